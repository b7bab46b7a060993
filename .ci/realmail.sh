#!/usr/bin/env bash
# Real-mail end-to-end tests (README.md, "Real mail servers"): installs
# Debian's Postfix, Dovecot, OpenDKIM and dnsmasq if they are missing,
# starts private instances of them on 127.0.0.1 (configured in a temporary
# directory, outbound delivery disabled), then runs TestRealMail
# (cmd/acmemail/realmail_test.go, build tag realmail) against them, and
# stops everything again.
#
# The mail world:
#   submission  Postfix smtpd, STARTTLS required, AUTH through Dovecot SASL,
#               sender must be owned by the login; OpenDKIM (signer) signs
#               example.com and ca.example.net; then relayed to
#   mx          a second Postfix smtpd ("the MX") where OpenDKIM (verifier)
#               checks DKIM through DNS and adds Authentication-Results
#               (authserv-id mx.example.com); then
#   delivery    Postfix virtual(8) into Maildirs, read by
#   imap        Dovecot, 143 (STARTTLS) and 993-style implicit TLS, passwd-file
#   dns         dnsmasq serving the two DKIM keys (opendkim-genkey)
#
# Then the server certificates (README.md, "Installing into Postfix and
# Dovecot"): acmemail server obtain --install postfix,dovecot against a
# standalone sandbox CA (dns-01 through its DNS server, RFC 2136 updates
# signed with TSIG, lego's rfc2136 provider), and openssl s_client must see
# exactly that certificate on submission (587 STARTTLS), submissions (465)
# and imaps (993), again after renew --force, and still after a refused
# certificate. The configurations live under $D/root/etc (ACMEMAIL_INSTALL_ROOT).
#
# Usage: .ci/realmail.sh [go test flags...]   (as root; e.g. -run TestRealMail/authserv)
# REALMAIL_KEEP=1 keeps the temporary directory (configs, logs, Maildirs).
# Without root or apt-get, and with the packages missing, it skips; with
# CI=true it fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

skip() {
  if [ "${CI:-}" = true ]; then
    echo "realmail: FAIL: $1 (CI=true: the real-mail tests must run)" >&2
    exit 1
  fi
  echo "realmail: SKIP: $1"
  exit 0
}

# ---- install -------------------------------------------------------------
need=()
[ -x /usr/sbin/postfix ] || need+=(postfix)
[ -x /usr/lib/dovecot/imap ] || need+=(dovecot-imapd)
[ -x /usr/sbin/opendkim ] || need+=(opendkim)
command -v opendkim-genkey >/dev/null 2>&1 || need+=(opendkim-tools)
[ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ "$(id -u)" != 0 ]; then
  skip "needs root: it installs packages and starts Postfix, Dovecot and OpenDKIM (try: sudo $0)"
fi
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || skip "${need[*]} missing and no apt-get to install them"
  echo "== realmail: installing ${need[*]}"
  # No system instance: no postfix configuration, and no service started by
  # the maintainer scripts (policy-rc.d), only the binaries.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
  fi
  log=$(mktemp)
  if ! { apt-get update -qq -o DPkg::Lock::Timeout=300 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${need[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
    skip "apt-get could not install ${need[*]}"
  fi
  rm -f "$log"
  [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
  echo "== realmail: installed in $((SECONDS - start))s"
fi

# ---- ports: a free block of 10 on 127.0.0.1 --------------------------------
port_busy() {
  local hex
  hex=$(printf ':%04X ' "$1")
  grep -qi -- "$hex" /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 2>/dev/null
}
base=
for _ in $(seq 50); do
  b=$((20000 + (RANDOM % 4000) * 10))
  ok=1
  for i in $(seq 0 9); do if port_busy $((b + i)); then ok=; break; fi; done
  if [ -n "$ok" ]; then base=$b; break; fi
done
[ -n "$base" ] || { echo "realmail: no free port block" >&2; exit 1; }
P_DNS=$base P_SUB=$((base + 1)) P_MX=$((base + 2)) P_IMAP=$((base + 3)) P_IMAPS=$((base + 4))
P_SIGN=$((base + 5)) P_VERIFY=$((base + 6)) P_SUBS=$((base + 7))

# ---- the world's directory --------------------------------------------------
D=$(mktemp -d /tmp/acmemail-realmail.XXXXXX)
chmod 755 "$D"
pids=()
cleanup() {
  local rc=$?
  [ -f "$D/postfix/main.cf" ] && postfix -c "$D/postfix" stop >/dev/null 2>&1 || true
  [ -f "$D/dovecot/dovecot.conf" ] && dovecot -c "$D/dovecot/dovecot.conf" stop >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ $rc -ne 0 ]; then
    for f in "$D/postfix/maillog" "$D/dovecot/dovecot.log" "$D/dnsmasq.log"; do
      [ -f "$f" ] && { echo "---- tail $f" >&2; tail -n 40 "$f" >&2; }
    done
  fi
  if [ -n "${REALMAIL_KEEP:-}" ]; then echo "realmail: kept $D" >&2; else rm -rf "$D"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$D"/{tls,secrets,dkim,opendkim,postfix,dovecot,run,mail/example.com,mail/ca.example.net}
chmod 700 "$D/secrets" "$D/tls" "$D/dkim"
chown -R nobody:nogroup "$D/mail"
chmod 755 "$D/run"
# The root acmemail server ... --install installs under: its etc/postfix and
# etc/dovecot are the private instances' configuration directories.
mkdir -p "$D/root/etc" "$D/dovecot/conf.d"
ln -s ../../postfix "$D/root/etc/postfix"
ln -s ../../dovecot "$D/root/etc/dovecot"

# TLS: a private root and one server certificate for 127.0.0.1.
(
  cd "$D/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=acmemail realmail test root" -keyout root.key -out root.pem \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=mx.example.com" \
    -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:mx.example.com\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >ext
  openssl x509 -req -in server.csr -CA root.pem -CAkey root.key -CAcreateserial -days 2 \
    -extfile ext -out server.pem 2>/dev/null
  cat server.pem root.pem >chain.pem
  chmod 644 root.pem
)
cp "$D/tls/root.pem" "$D/roots.pem"

# DKIM keys, made and published the way an admin does it.
dns_txt=
for dom in example.com ca.example.net; do
  mkdir -p "$D/dkim/$dom"
  opendkim-genkey -b 2048 -d "$dom" -s realmail -D "$D/dkim/$dom"
  # realmail.txt is a zone-file record; its quoted strings are the TXT strings.
  dns_txt+="txt-record=realmail._domainkey.$dom,$(grep -o '"[^"]*"' "$D/dkim/$dom/realmail.txt" | paste -sd,)"$'\n'
done

# Users: a password file per address (never in argv).
users=(alice@example.com bob@example.com carol@example.com acme-challenge@ca.example.net)
: >"$D/dovecot/users"
for u in "${users[@]}"; do
  pw=$(openssl rand -hex 16)
  printf '%s\n' "$pw" >"$D/secrets/$u.password"
  printf '%s:{PLAIN}%s::::::\n' "$u" "$pw" >>"$D/dovecot/users"
done
printf 'not-the-password\n' >"$D/secrets/wrong.password"
chmod 600 "$D"/secrets/*
chown root:dovecot "$D/dovecot/users"
chmod 640 "$D/dovecot/users"

# ---- dnsmasq --------------------------------------------------------------
cat >"$D/dnsmasq.conf" <<EOF
port=$P_DNS
listen-address=127.0.0.1
bind-interfaces
no-resolv
no-hosts
no-poll
user=nobody
group=nogroup
local=/example.com/ca.example.net/
log-queries
log-facility=$D/dnsmasq.log
$dns_txt
EOF
dnsmasq --keep-in-foreground --conf-file="$D/dnsmasq.conf" --pid-file="$D/run/dnsmasq.pid" &
pids+=($!)

# ---- OpenDKIM: a signer for submission, a verifier for the MX ----------------
cat >"$D/opendkim/unbound.conf" <<EOF
server:
  do-not-query-localhost: no
  username: ""
  chroot: ""
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@$P_DNS
EOF
cat >"$D/opendkim/keytable" <<EOF
example.com example.com:realmail:$D/dkim/example.com/realmail.private
ca.example.net ca.example.net:realmail:$D/dkim/ca.example.net/realmail.private
EOF
cat >"$D/opendkim/signingtable" <<EOF
*@example.com example.com
*@ca.example.net ca.example.net
EOF
cat >"$D/opendkim/sign.conf" <<EOF
Syslog yes
LogWhy yes
Mode s
Canonicalization relaxed/relaxed
KeyTable file:$D/opendkim/keytable
SigningTable refile:$D/opendkim/signingtable
OversignHeaders From
InternalHosts 127.0.0.1
# The key directory is 0700, but /tmp above it is world-writable.
RequireSafeKeys false
Socket inet:$P_SIGN@127.0.0.1
PidFile $D/run/opendkim-sign.pid
EOF
cat >"$D/opendkim/verify.conf" <<EOF
Syslog yes
LogWhy yes
Mode v
# OpenDKIM also removes incoming Authentication-Results fields that claim
# this authserv-id, with no further setting (TestRealMail checks it).
AuthservID mx.example.com
ResolverConfiguration $D/opendkim/unbound.conf
Socket inet:$P_VERIFY@127.0.0.1
PidFile $D/run/opendkim-verify.pid
EOF
opendkim -f -x "$D/opendkim/sign.conf" &
pids+=($!)
opendkim -f -x "$D/opendkim/verify.conf" &
pids+=($!)

# ---- Dovecot --------------------------------------------------------------
cat >"$D/dovecot/dovecot.conf" <<EOF
protocols = imap
listen = 127.0.0.1
base_dir = $D/run/dovecot
state_dir = $D/dovecot/state
log_path = $D/dovecot/dovecot.log
ssl = required
ssl_cert = <$D/tls/chain.pem
ssl_key = <$D/tls/server.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_username_format = %Lu
mail_location = maildir:$D/mail/%d/%n
passdb {
  driver = passwd-file
  args = scheme=PLAIN $D/dovecot/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$D/mail/%d/%n
}
service imap-login {
  inet_listener imap {
    port = $P_IMAP
  }
  inet_listener imaps {
    port = $P_IMAPS
    ssl = yes
  }
}
service auth {
  unix_listener $D/run/postfix-auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
# As Debian's dovecot.conf: acmemail --install dovecot writes conf.d/99-acmemail.conf.
!include_try conf.d/*.conf
EOF
mkdir -p "$D/dovecot/state"
dovecot -c "$D/dovecot/dovecot.conf"

# ---- Postfix --------------------------------------------------------------
cat >"$D/postfix/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $D/postfix/queue
data_directory = $D/postfix/data
maillog_file = $D/postfix/maillog
maillog_file_prefixes = $D/
mail_owner = postfix
setgid_group = postdrop
myhostname = submission.example.com
mydomain = example.com
myorigin = example.com
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
smtputf8_enable = no
biff = no
# Nothing leaves this machine.
default_transport = error:outbound delivery disabled in the acmemail test world
relay_transport = error:outbound delivery disabled in the acmemail test world
local_transport = error:local delivery disabled in the acmemail test world
relay_domains =
virtual_mailbox_domains = example.com ca.example.net
virtual_mailbox_base = $D/mail
virtual_mailbox_maps = texthash:$D/postfix/vmailbox
virtual_alias_maps = texthash:$D/postfix/valias
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(getent group nogroup | cut -d: -f3)
recipient_delimiter = +
smtpd_tls_cert_file = $D/tls/chain.pem
smtpd_tls_key_file = $D/tls/server.key
smtpd_tls_security_level = may
smtp_tls_security_level = may
milter_protocol = 6
milter_default_action = tempfail
EOF
cat >"$D/postfix/vmailbox" <<EOF
alice@example.com example.com/alice/
bob@example.com example.com/bob/
carol@example.com example.com/carol/
acme-challenge@ca.example.net ca.example.net/acme-challenge/
EOF
# info@ is delivered to carol, who may not send as info@.
echo "info@example.com carol@example.com" >"$D/postfix/valias"
cat >"$D/postfix/sender_login" <<EOF
alice@example.com alice@example.com
bob@example.com bob@example.com
carol@example.com carol@example.com
acme-challenge@ca.example.net acme-challenge@ca.example.net
EOF
cat >"$D/postfix/master.cf" <<EOF
127.0.0.1:$P_SUB inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_sasl_type=dovecot
  -o smtpd_sasl_path=$D/run/postfix-auth
  -o smtpd_sender_login_maps=texthash:$D/postfix/sender_login
  -o smtpd_sender_restrictions=reject_sender_login_mismatch,permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o smtpd_recipient_restrictions=
  -o smtpd_milters=inet:127.0.0.1:$P_SIGN
  -o content_filter=smtp:[127.0.0.1]:$P_MX
127.0.0.1:$P_SUBS inet n - n - - smtpd
  -o syslog_name=postfix/submissions
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_sasl_type=dovecot
  -o smtpd_sasl_path=$D/run/postfix-auth
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o smtpd_recipient_restrictions=
127.0.0.1:$P_MX inet n - n - - smtpd
  -o syslog_name=postfix/mx
  -o myhostname=mx.example.com
  -o smtpd_milters=inet:127.0.0.1:$P_VERIFY
  -o content_filter=
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
tlsmgr    unix - - n 1000? 1 tlsmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
virtual   unix - n n - - virtual
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
mkdir -p "$D/postfix/queue" "$D/postfix/data"
chown postfix "$D/postfix/data"
postfix -c "$D/postfix" check || { echo "realmail: postfix check failed; run: script -qc 'postfix -c $D/postfix check'" >&2; exit 1; }
postfix -c "$D/postfix" start >/dev/null

# ---- wait until everything listens -------------------------------------------
wait_port() {
  for _ in $(seq 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "realmail: $2 did not start listening on 127.0.0.1:$1" >&2
  return 1
}
wait_port "$P_DNS" dnsmasq
wait_port "$P_SIGN" "opendkim (signer)"
wait_port "$P_VERIFY" "opendkim (verifier)"
wait_port "$P_IMAP" dovecot
wait_port "$P_SUB" "postfix (submission)"
wait_port "$P_SUBS" "postfix (submissions)"
wait_port "$P_MX" "postfix (mx)"

go build -race -o "$D/acmemail" ./cmd/acmemail

cat >"$D/realmail.env" <<EOF
# Written by .ci/realmail.sh; read by cmd/acmemail/realmail_test.go.
ACMEMAIL=$D/acmemail
DIR=$D
ROOTS=$D/roots.pem
IMAP=imap://127.0.0.1:$P_IMAP
IMAPS=imaps://127.0.0.1:$P_IMAPS
SMTP=smtp://127.0.0.1:$P_SUB
MX=127.0.0.1:$P_MX
DNS=127.0.0.1:$P_DNS
AUTHSERV_ID=mx.example.com
CA_ADDRESS=acme-challenge@ca.example.net
SECRETS=$D/secrets
MAILDIR=$D/mail
EOF
echo "== realmail: Postfix $(postconf -d -h mail_version), $(dovecot --version | cut -d' ' -f1-2), $(opendkim -V | head -1), dnsmasq $(dnsmasq --version | head -1 | cut -d' ' -f3) up on 127.0.0.1:$base-$((base + 7)) after $((SECONDS - start))s"

ACMEMAIL_REALMAIL="$D/realmail.env" go test -race -tags realmail -count=1 -v -run "${REALMAIL_RUN:-TestRealMail}" "$@" ./cmd/acmemail

# ---- server certificates into the running Postfix and Dovecot ----------------
# After TestRealMail, which trusts the servers' first certificate.
srv_start=$SECONDS
HOST=mail.example.test

# sandbox DIR [FLAGS...]: runs "acmemail sandbox" in the background until
# it has printed its addresses (directory, dns, dns-update).
sandbox() {
  local dir=$1
  shift
  mkdir -p "$dir"
  "$D/acmemail" sandbox --dir "$dir" "$@" >"$dir/stdout" 2>"$dir/stderr" &
  pids+=($!)
  for _ in $(seq 300); do
    if grep -q '^dns-update ' "$dir/stdout" 2>/dev/null && grep -q '^directory ' "$dir/stdout"; then return 0; fi
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "realmail: acmemail sandbox did not start; its stderr:" >&2
  cat "$dir/stderr" >&2
  return 1
}
# field DIR NAME: what the sandbox in DIR printed for NAME.
field() { awk -v k="$2" '$1 == k { print $2; exit }' "$1/stdout"; }

# server DIR ARGS...: acmemail server ARGS with the sandbox in DIR as the CA
# and DNS (lego's rfc2136 provider, TSIG key from tsig-keygen's file), and
# the private instances' configuration under $D/root.
server() {
  local dir=$1
  shift
  env ACMEMAIL_HOME="$dir/home" ACMEMAIL_CA_ROOTS="$(field "$dir" roots)" ACMEMAIL_INSTALL_ROOT="$D/root" \
    RFC2136_NAMESERVER="$(field "$dir" dns)" RFC2136_TSIG_FILE="$(field "$dir" dns-update)" \
    "$D/acmemail" server "$@"
}

# served PORT [STARTTLS]: the SHA-256 fingerprint of the certificate served
# on PORT, verified for $HOST against the sandbox's issuer root. Postfix and
# Dovecot may finish a connection with an old process after a reload, so it
# waits (up to 10 s) for WANT when it is set.
served() {
  local fp=
  for _ in $(seq 50); do
    fp=$(openssl s_client -connect "127.0.0.1:$1" ${2:+-starttls "$2"} -servername "$HOST" \
      -verify_hostname "$HOST" -CAfile "$ISSUER_ROOT" -verify_return_error </dev/null 2>/dev/null |
      openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2) || true
    [ -n "$fp" ] && { [ -z "${WANT:-}" ] || [ "$fp" = "$WANT" ]; } && break
    sleep 0.2
  done
  echo "$fp"
}
installed_fp() { openssl x509 -in "$D/root/etc/acmemail/$1/$HOST/current/chain.pem" -noout -fingerprint -sha256 | cut -d= -f2; }

# check_served WHAT: Postfix (587 STARTTLS, 465) and Dovecot (993) serve
# the certificate acmemail installed, which is the one in its state.
check_served() {
  local want got port
  want=$(openssl x509 -in "$SB/home/servers/$HOST/chain.pem" -noout -fingerprint -sha256 | cut -d= -f2)
  [ "$(installed_fp postfix)" = "$want" ] && [ "$(installed_fp dovecot)" = "$want" ] ||
    { echo "realmail: $1: the installed certificate is not the one in acmemail's state" >&2; return 1; }
  for port in "$P_SUB smtp" "$P_SUBS" "$P_IMAPS"; do
    got=$(WANT=$want served $port)
    if [ "$got" != "$want" ]; then
      echo "realmail: $1: 127.0.0.1:${port% *} serves ${got:-no verifiable certificate}, want $want" >&2
      return 1
    fi
  done
  echo "$want"
}

SB=$D/sandbox-server
sandbox "$SB"
ISSUER_ROOT=$(field "$SB" issuer-root)
server "$SB" obtain --server "$(field "$SB" directory)" --dns rfc2136 --dns-resolver "$(field "$SB" dns)" \
  --issuer-roots "$ISSUER_ROOT" --service submission --service submissions --service imaps \
  --experimental-service-challenge --install postfix,dovecot --json mail.example.test >"$D/server-obtain.json"
# The SRVName otherNames (dns-service-01) ride along: the servers must serve
# such a certificate as any other.
openssl x509 -in "$SB/home/servers/$HOST/cert.pem" -noout -ext subjectAltName | grep -q 'SRVName::_imaps.mail.example.test' ||
  { echo "realmail: the certificate has no SRVName for imaps" >&2; exit 1; }
first=$(check_served "after obtain")
echo "== realmail: server certificate $first served by Postfix (587, 465) and Dovecot (993)"

server "$SB" renew --force "$HOST" >/dev/null
second=$(check_served "after renew --force")
[ "$second" != "$first" ] || { echo "realmail: renew --force served the same certificate" >&2; exit 1; }
echo "== realmail: renewed certificate $second served"

# A CA that issues a certificate without serverAuth: refused (exit 5),
# nothing installed, the servers still serve the renewed one.
BAD=$D/sandbox-bad
sandbox "$BAD" --sandbox-bad-cert no-server-auth
rc=0
server "$BAD" obtain --server "$(field "$BAD" directory)" --dns rfc2136 --dns-resolver "$(field "$BAD" dns)" \
  --service submissions --install postfix,dovecot "$HOST" >"$D/server-bad.out" 2>&1 || rc=$?
if [ $rc -ne 5 ]; then
  echo "realmail: a certificate without serverAuth: exit $rc, want 5" >&2
  cat "$D/server-bad.out" >&2
  exit 1
fi
for t in postfix dovecot; do
  [ "$(installed_fp $t)" = "$second" ] || { echo "realmail: the refused certificate changed what is installed into $t" >&2; exit 1; }
done
for port in "$P_SUB smtp" "$P_SUBS" "$P_IMAPS"; do
  got=$(served $port)
  [ "$got" = "$second" ] || { echo "realmail: after a refused certificate 127.0.0.1:${port% *} serves $got, want $second" >&2; exit 1; }
done
echo "== realmail: a certificate without serverAuth refused, nothing installed; server certificates took $((SECONDS - srv_start))s"
echo "== realmail: done in $((SECONDS - start))s"
