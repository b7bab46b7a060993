#!/bin/sh
# obtain-all.sh: obtain an S/MIME certificate for every address in a file.
#
#   obtain-all.sh ADDRESSES-FILE
#
# ADDRESSES-FILE holds one address per line; blank lines and lines starting
# with # are skipped. Everything else comes from the configuration file
# (~/.config/acmemail/config.toml, one [identity."ADDRESS"] table each) or
# from ACMEMAIL_* variables, e.g. ACMEMAIL_SERVER=sandbox to try it out.
# Prints "ADDRESS PKCS12-PATH" per certificate on stdout. Exit status 0 when
# every address got its certificate, else that of the last failure.
set -u

list=${1:?usage: obtain-all.sh ADDRESSES-FILE}
[ -r "$list" ] || { echo "obtain-all.sh: cannot read $list" >&2; exit 2; }

status=0
while IFS= read -r addr || [ -n "$addr" ]; do
	addr=$(printf '%s' "$addr" | tr -d '[:space:]')
	case $addr in '' | '#'*) continue ;; esac
	# stdin stays away from acmemail: the list is on it. Prompts, if any,
	# go to the terminal.
	if p12=$(acmemail obtain "$addr" </dev/null); then
		printf '%s %s\n' "$addr" "$p12"
	else
		rc=$?
		echo "obtain-all.sh: no certificate for $addr (acmemail exit status $rc)" >&2
		status=$rc
	fi
done <"$list"
exit "$status"
