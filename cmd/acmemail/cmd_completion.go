package main

import (
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/acmemail/acmemail/keystore"
)

const completionLong = `Print a shell completion script for acmemail to stdout.

The script completes commands, flags, the values of flags such as --server and
--key-type, and mail addresses: for an EMAIL argument it offers the identities
acmemail already manages (the certificates in the state directory).

Load it for the current shell session, or install it where your shell looks for
completions (see the examples).`

const completionExample = `  # bash, this session / for every session (bash-completion installed):
  source <(acmemail completion bash)
  acmemail completion bash > ~/.local/share/bash-completion/completions/acmemail

  # zsh (a directory in $fpath):
  acmemail completion zsh > "${fpath[1]}/_acmemail"

  # fish:
  acmemail completion fish > ~/.config/fish/completions/acmemail.fish

  # PowerShell:
  acmemail completion powershell | Out-String | Invoke-Expression`

func newCompletionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:       "completion bash|zsh|fish|powershell",
		Short:     "Print a shell completion script",
		Long:      completionLong,
		Example:   completionExample,
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(g.stdout, true)
			case "zsh":
				return root.GenZshCompletion(g.stdout)
			case "fish":
				return root.GenFishCompletion(g.stdout, true)
			case "powershell":
				return root.GenPowerShellCompletionWithDesc(g.stdout)
			}
			return usageErrorf("unknown shell %q: choose bash, zsh, fish or powershell", args[0])
		},
	}
}

// flagValues are the fixed choices of flags that any command may have;
// wireCompletions registers them wherever such a flag exists.
var flagValues = map[string][]string{
	"server":      {"sandbox\tthe embedded test CA", "castle\tCASTLE Platform ACME", "castle-staging\tCASTLE Platform ACME (staging)"},
	"key-type":    {"rsa2048", "rsa3072", "rsa4096", "p256", "p384"},
	"usage":       {"both", "sign", "encrypt"},
	"p12-profile": {"modern", "legacy"},
	"join":        {"string", "octet"},
	"format":      {"p12", "pem"},
	"only":        {"signing", "encryption"},
	"reason":      {"unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation"},
}

// wireCompletions walks the command tree once it is built: every command
// whose arguments are mail addresses (its Use names EMAIL) completes the
// managed identities, and every flag with fixed values completes them.
// Commands added later get this without doing anything.
func wireCompletions(g *globals, root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.ValidArgsFunction == nil && strings.Contains(c.Use, "EMAIL") {
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
				return completeIdentities(g, args, toComplete), cobra.ShellCompDirectiveNoFileComp
			}
		}
		for name, values := range flagValues {
			if c.LocalNonPersistentFlags().Lookup(name) == nil {
				continue
			}
			if _, ok := c.GetFlagCompletionFunc(name); ok {
				continue
			}
			vals := values
			c.RegisterFlagCompletionFunc(name, func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
				return vals, cobra.ShellCompDirectiveNoFileComp
			})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// completeIdentities lists the addresses with a certificate in the state
// directory, minus those already on the command line. Completion must never
// fail loudly or create anything, so errors give no candidates.
func completeIdentities(g *globals, args []string, prefix string) []cobra.Completion {
	dir, err := keystore.DefaultDir(g.getenv)
	if err != nil {
		return nil
	}
	// Nothing managed yet, or not readable: completion never creates the
	// state directory, nor changes it.
	store, err := keystore.OpenExisting(dir)
	if err != nil {
		return nil
	}
	emails, err := store.ListCertificates()
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	for _, a := range args {
		seen[strings.ToLower(a)] = true
	}
	var out []cobra.Completion
	for _, e := range emails {
		if !seen[strings.ToLower(e)] && strings.HasPrefix(strings.ToLower(e), strings.ToLower(prefix)) {
			out = append(out, e)
		}
	}
	sort.Strings(out)
	return out
}
