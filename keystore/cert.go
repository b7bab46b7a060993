package keystore

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// File names in a certificate directory.
const (
	pendingKeyFile = "pending-key.pem"
	keyFile        = "key.pem"
	chainFile      = "chain.pem"
	p12File        = "cert.p12"
	metaFile       = "meta.json"
	lockFileName   = ".lock"
	// A pending key that did not parse is kept as
	// pending-key.pem.corrupt-<time> (see CertKey).
	corruptInfix = ".corrupt-"
	// A staged install: chain.pem.new and meta.json.new (see SaveCertificate).
	stagedSuffix = ".new"
)

// CertMeta describes an installed certificate (meta.json).
type CertMeta struct {
	Email string `json:"email"` // the address (domain lowercased)
	// Also lists the certificate's other addresses, comma-separated (a
	// string keeps CertMeta comparable); caller-set, "" for one address.
	Also      string    `json:"also,omitempty"`
	Directory string    `json:"directory"`  // ACME directory URL of the issuing CA
	KeyType   KeyType   `json:"key_type"`   // set by SaveCertificate from the key
	Usage     string    `json:"usage"`      // "both", "sign" or "encrypt"
	Serial    string    `json:"serial"`     // lowercase hex; set by SaveCertificate from the leaf
	NotBefore time.Time `json:"not_before"` // set by SaveCertificate from the leaf
	NotAfter  time.Time `json:"not_after"`  // set by SaveCertificate from the leaf
	OrderURL  string    `json:"order_url"`
	CertURL   string    `json:"cert_url"`
	// Profile says how the certificate was obtained, so that renew can do
	// it again unattended: the caller's record, stored as is (acmemail's
	// issuer package defines it; keystore does not look inside).
	Profile json.RawMessage `json:"profile,omitempty"`
	// Settings are what acmemail recorded before Profile existed; read
	// only, to migrate; nil for certificates from even older versions.
	Settings *Settings `json:"settings,omitempty"`
}

// Settings are the choices an obtain run made for an identity, recorded
// with its certificate so a renewal (from cron, with only the password
// given) repeats them. They never hold a password or other secret.
type Settings struct {
	Server          string   `json:"server"`              // as given: a name or the directory URL
	IMAP            string   `json:"imap"`                // URL
	SMTP            string   `json:"smtp"`                // URL
	User            string   `json:"user"`                // mail login
	SMTPUser        string   `json:"smtp_user,omitempty"` // submission login, if not User
	AuthMech        string   `json:"auth_mech,omitempty"` // auto, plain, login, oauthbearer, xoauth2
	Mailbox         string   `json:"mailbox"`             // IMAP folder the challenge arrives in
	P12Profile      string   `json:"p12_profile"`         // "modern" or "legacy"
	Join            string   `json:"join,omitempty"`      // token join mode ("string" or "octet"), "" for the server's default
	DNSResolver     string   `json:"dns_resolver,omitempty"`
	TrustAuthservID string   `json:"trust_authserv_id,omitempty"`
	SMIMERoots      string   `json:"smime_roots,omitempty"` // path of a PEM file
	Insecure        bool     `json:"insecure,omitempty"`    // unencrypted IMAP/SMTP to loopback
	SkipMailAuth    bool     `json:"insecure_skip_mail_auth,omitempty"`
	MailWait        string   `json:"mail_wait,omitempty"`    // Go duration
	ReplySettle     string   `json:"reply_settle,omitempty"` // Go duration, "" for the server's default
	Contact         []string `json:"contact,omitempty"`
	DeployHook      string   `json:"deploy_hook,omitempty"` // shell command run after each issuance
	// IssuerRoots is the path of the PEM file of the CA's roots the chain
	// must verify to, or "".
	IssuerRoots string `json:"issuer_roots,omitempty"`
	// AlsoMailboxes are the mailboxes of the certificate's other
	// addresses (CertMeta.Also) that are not read from the primary one.
	AlsoMailboxes []AlsoMailbox `json:"also_mailboxes,omitempty"`
	// Where the mail login comes from (the commands that print the
	// password or OAuth token, or the files holding the password), so a
	// renewal run can log in without being told again: commands and
	// absolute file paths, never the secret they give.
	PasswordCommand     string `json:"password_command,omitempty"`
	PasswordFile        string `json:"password_file,omitempty"`
	OAuthTokenCommand   string `json:"oauth_token_command,omitempty"`
	SMTPPasswordCommand string `json:"smtp_password_command,omitempty"`
	SMTPPasswordFile    string `json:"smtp_password_file,omitempty"`
}

// AlsoMailbox is where mail for one more address of a certificate is read
// and sent. It never holds a password, only the path of the file it is
// read from or the command that prints it.
type AlsoMailbox struct {
	Email           string `json:"email"`
	IMAP            string `json:"imap"`
	SMTP            string `json:"smtp"`
	User            string `json:"user"`
	PasswordFile    string `json:"password_file,omitempty"`
	PasswordCommand string `json:"password_command,omitempty"`
}

// CertPaths are the files of an address's certificate.
type CertPaths struct {
	Dir    string // certificates/<email>
	Key    string // key.pem
	Chain  string // chain.pem, leaf first
	Leaf   string // cert.pem, the leaf alone
	PKCS12 string // cert.p12 (written by Store.WritePKCS12, may not exist)
	Meta   string // meta.json
	// Archive is the directory SaveCertificate moved the previous
	// certificate to; "" if there was none (or for other methods).
	Archive string
}

// certDir validates email and returns its normalized form and directory
// (see [Store.dirName]). With create, the directory (and its parents) are
// created.
func (s *Store) certDir(email string, create bool) (norm, dir string, err error) {
	top := certificatesDir
	if s.servers {
		top = serversDir
		norm, err = NormalizeHost(email)
	} else {
		norm, err = NormalizeEmail(email)
	}
	if err != nil {
		return "", "", err
	}
	name := s.dirName(norm)
	switch {
	case create && s.slot != "":
		dir, err = s.subdir(top, name, s.slot)
	case create:
		dir, err = s.subdir(top, name)
	default:
		dir = filepath.Join(s.Dir, top, name, s.slot)
	}
	return norm, dir, err
}

// dirName is the name of the directory under certificates/ of the
// normalized address norm: norm itself, unless there is nothing of that
// name but a directory that an older acmemail made under another spelling
// of it (the local part in NFD, say: before addresses were put in NFC);
// then that one, the first in sorted order, so that the address keeps its
// keys and certificates and is not duplicated. A directory of norm's own
// name always wins; another spelling beside it is left alone (and is not
// listed).
func (s *Store) dirName(norm string) string {
	if s.servers {
		return norm // host names have one spelling (NormalizeHost)
	}
	root := filepath.Join(s.Dir, certificatesDir)
	if _, err := os.Lstat(filepath.Join(root, norm)); !errors.Is(err, fs.ErrNotExist) {
		return norm
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return norm
	}
	for _, e := range entries { // sorted by name
		if e.IsDir() && e.Name() != norm {
			if n, err := NormalizeEmail(e.Name()); err == nil && n == norm {
				return e.Name()
			}
		}
	}
	return norm
}

func pathsIn(dir string) CertPaths {
	return CertPaths{
		Dir:    dir,
		Key:    filepath.Join(dir, keyFile),
		Chain:  filepath.Join(dir, chainFile),
		Leaf:   filepath.Join(dir, leafFile),
		PKCS12: filepath.Join(dir, p12File),
		Meta:   filepath.Join(dir, metaFile),
	}
}

// CertificatePaths returns the paths of email's certificate files, whether
// or not they exist.
func (s *Store) CertificatePaths(email string) (CertPaths, error) {
	_, dir, err := s.certDir(email, false)
	if err != nil {
		return CertPaths{}, err
	}
	return pathsIn(dir), nil
}

// CertKey returns the pending certificate key for email: the key for the
// next certificate, kept in certificates/<email>/pending-key.pem until
// [Store.SaveCertificate] installs it. If a pending key of type kt exists
// it is reused, so that a resumed run finalizes with the same key; if one
// of another type exists it is moved to the archive. Otherwise a new key
// is generated and written (created exclusively, 0600) before CertKey
// returns, so it is on disk before the order is finalized. A
// pending-key.pem that does not hold a key is renamed to
// pending-key.pem.corrupt-<time>, kept, and replaced by a new key; the
// store's Notice is told.
func (s *Store) CertKey(email string, kt KeyType) (crypto.Signer, error) {
	if !kt.CertificateKey() {
		return nil, fmt.Errorf("certificate key for %s: key type %q cannot be used for certificates", email, string(kt))
	}
	norm, dir, err := s.certDir(email, true)
	if err != nil {
		return nil, fmt.Errorf("certificate key: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("certificate key for %s: %w", norm, err)
	}
	defer unlock()
	if err := finishInstall(dir); err != nil {
		return nil, fmt.Errorf("certificate key for %s: %w", norm, err)
	}
	path := filepath.Join(dir, pendingKeyFile)
	key, err := s.readPendingKey(dir, path)
	switch {
	case err != nil:
		return nil, fmt.Errorf("certificate key for %s: %w", norm, err)
	case key != nil:
		if got, err := KeyTypeOf(key.Public()); err == nil && got == kt {
			return key, nil
		}
		arch, err := newArchiveDir(dir, time.Now())
		if err != nil {
			return nil, fmt.Errorf("certificate key for %s: %w", norm, err)
		}
		if err := os.Rename(path, filepath.Join(arch, pendingKeyFile)); err != nil {
			return nil, fmt.Errorf("certificate key for %s: archive the pending key: %w", norm, err)
		}
		if err := syncDir(dir); err != nil {
			return nil, fmt.Errorf("certificate key for %s: %w", norm, err)
		}
	}
	key, err = GenerateKey(kt)
	if err != nil {
		return nil, fmt.Errorf("certificate key for %s: %w", norm, err)
	}
	data, err := MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certificate key for %s: %w", norm, err)
	}
	if err := writeFileExclusive(path, data, filePerm); err != nil {
		return nil, fmt.Errorf("certificate key for %s: %w", norm, err)
	}
	return key, nil
}

// readPendingKey reads the pending key at path in the certificate
// directory dir (locked); nil if there is none. A file that does not
// parse as a key (a torn write, a failing disk, an edit) would stop every
// run for the address: it is renamed to pending-key.pem.corrupt-<time>,
// kept (key material is never deleted), and the Notice told, so that a
// new key is made. One that cannot be read is an error that names it.
func (s *Store) readPendingKey(dir, path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w; make it readable, or move it aside for a new key to be made", path, err)
	}
	key, perr := ParsePrivateKey(data)
	if perr == nil {
		return key, nil
	}
	base := path + corruptInfix + time.Now().UTC().Format(archiveTimeFormat)
	aside := base
	for i := 2; ; i++ {
		ok, err := exists(aside)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		aside = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(path, aside); err != nil {
		return nil, fmt.Errorf("%s does not hold a key (%v), and it cannot be moved aside: %w", path, perr, err)
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	s.notice(fmt.Sprintf("%s did not hold a key (%v): moved it to %s (kept, never deleted); a new key is made", path, perr, aside))
	return nil, nil
}

// SaveCertificate installs the certificate chain chainPEM (PEM, leaf
// first) for email. The leaf's public key must be that of the pending key
// (from [Store.CertKey]), which then becomes key.pem; a chain for the key
// already in key.pem is accepted too (the key is kept). Anything else is
// refused and nothing on disk changes.
//
// meta.Email, KeyType, Serial, NotBefore and NotAfter are filled in from
// the key and the leaf; the caller sets Directory, Usage, OrderURL and
// CertURL. The chain is stored re-encoded (certificates only).
//
// The previous key.pem, chain.pem, cert.pem, meta.json, cert.p12 and
// renewal.json are preserved in certificates/<email>/archive/<timestamp>/
// (paths.Archive); nothing is deleted. cert.p12 no longer exists
// afterwards: it belonged to the old certificate (see [Store.WritePKCS12]
// and [Store.SaveCertificateWithPKCS12]).
//
// The install is atomic as a whole: the new files are written first,
// before anything else changes (so that a full disk fails the save before
// the previous generation is archived, and leaves everything as it was),
// then staged as meta.json.new, cert.pem.new and chain.pem.new, then
// renamed into place; if the process dies in between, the next call of
// any certificate method for email completes the install. The pending
// order's state (order.json) is removed by the install, not before: a
// save that fails keeps it, so the order can be continued and its
// certificate downloaded again.
func (s *Store) SaveCertificate(email string, chainPEM []byte, meta CertMeta) (paths CertPaths, err error) {
	inst, err := s.saveCertificate(email, chainPEM, meta, nil)
	return inst.CertPaths, err
}

// Installed is a certificate as [Store.SaveCertificateWithPKCS12]
// installed it: its files, and the key, chain and meta they hold (what
// [Store.LoadCertificate] would read back).
type Installed struct {
	CertPaths
	Key   crypto.Signer
	Chain []*x509.Certificate
	Meta  CertMeta
}

// SaveCertificateWithPKCS12 is [Store.SaveCertificate] that installs p12
// (the PKCS #12 encoding of the certificate's key and chain, see
// [EncodePKCS12]; not checked here, it is encrypted) as cert.p12 in the
// same atomic install: the certificate is installed with its PKCS #12
// file or not at all.
func (s *Store) SaveCertificateWithPKCS12(email string, chainPEM []byte, meta CertMeta, p12 []byte) (Installed, error) {
	if len(p12) == 0 {
		return Installed{}, errors.New("save certificate: empty PKCS #12 file")
	}
	return s.saveCertificate(email, chainPEM, meta, p12)
}

func (s *Store) saveCertificate(email string, chainPEM []byte, meta CertMeta, p12 []byte) (Installed, error) {
	norm, dir, err := s.certDir(email, true)
	if err != nil {
		return Installed{}, fmt.Errorf("save certificate: %w", err)
	}
	fail := func(err error) (Installed, error) {
		return Installed{}, fmt.Errorf("save certificate for %s: %w", norm, err)
	}
	chain, err := ParseChain(chainPEM)
	if err != nil {
		return fail(err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return fail(err)
	}
	defer unlock()
	if err := finishInstall(dir); err != nil {
		return fail(err)
	}

	// Whose key is it?
	leafPub := chain[0].PublicKey
	pendingPath := filepath.Join(dir, pendingKeyFile)
	keyPath := filepath.Join(dir, keyFile)
	key, err := readKey(pendingPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail(err)
	}
	if key == nil || !publicKeysEqual(key.Public(), leafPub) {
		cur, err := readKey(keyPath)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fail(err)
		}
		if cur == nil || !publicKeysEqual(cur.Public(), leafPub) {
			return fail(fmt.Errorf("the certificate's public key matches neither %s nor %s", pendingPath, keyPath))
		}
		key = cur
	}
	kt, err := KeyTypeOf(key.Public())
	if err != nil {
		return fail(err)
	}
	meta.Email = norm
	meta.KeyType = kt
	fillFromLeaf(&meta, chain[0])
	metaJSON, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return fail(err)
	}
	// The meta as LoadCertificate reads it back (Profile as indented),
	// for the caller.
	var saved CertMeta
	if err := json.Unmarshal(metaJSON, &saved); err != nil {
		return fail(err)
	}
	paths := pathsIn(dir)

	// 1. Write the new certificate's files, the chain first, under
	//    temporary names: this is what takes space, and nothing has
	//    changed yet if it fails.
	files := []stagedFile{
		{chainFile + stagedSuffix, encodeChain(chain)},
		{leafFile + stagedSuffix, encodeChain(chain[:1])},
		{metaFile + stagedSuffix, append(metaJSON, '\n')},
	}
	if p12 != nil {
		files = append(files, stagedFile{p12File + stagedSuffix, p12})
	}
	tmps, err := writeStaged(dir, files)
	if err != nil {
		return fail(err)
	}
	defer removeTemps(tmps)

	// 2. Preserve the current generation (hard links: the current names
	//    stay in place until they are replaced). cert.pem and the renewal
	//    window go along: they describe that generation, and a file the
	//    install replaces or removes while a link keeps it is not freed.
	//    (Without a journal, ext4 makes every file creation in the next
	//    one to six minutes skip past each inode freed, so what an install
	//    frees costs the renewals that follow it.)
	var old []string
	for _, name := range []string{keyFile, chainFile, leafFile, metaFile, p12File, renewalFile} {
		ok, err := exists(filepath.Join(dir, name))
		if err != nil {
			return fail(err)
		}
		if ok {
			old = append(old, name)
		}
	}
	if len(old) > 0 {
		arch, err := archiveCurrent(dir, old)
		if err != nil {
			return fail(err)
		}
		paths.Archive = arch
	}

	// 3. Stage. chain.pem.new appears last: its existence means the
	//    staged install is complete and must be rolled forward, so
	//    meta.json.new, cert.pem.new (and cert.p12.new) are renamed into
	//    place and durable before it is. One directory fsync does for
	//    all of them; the one that makes the chain's rename durable is
	//    finishInstall's.
	if err := renameStaged(dir, files, tmps); err != nil {
		if paths.Archive != "" {
			unarchive(paths.Archive, old)
		}
		return fail(err)
	}

	// 4. Commit.
	if err := finishInstall(dir); err != nil {
		return fail(err)
	}
	return Installed{CertPaths: paths, Key: key, Chain: chain, Meta: saved}, nil
}

// archiveCurrent links the files names of dir (the current generation)
// into a new archive directory and returns it. If that fails, the
// directory is removed again: it held only second names of files that
// are still current.
func archiveCurrent(dir string, names []string) (string, error) {
	arch, err := newArchiveDir(dir, time.Now())
	if err != nil {
		return "", err
	}
	for i, name := range names {
		if err := preserve(filepath.Join(dir, name), filepath.Join(arch, name)); err != nil {
			unarchive(arch, names[:i])
			return "", err
		}
	}
	if err := syncDir(arch); err != nil {
		unarchive(arch, names)
		return "", err
	}
	return arch, nil
}

// unarchive undoes archiveCurrent when the install it prepared failed
// before anything was replaced: the files names in arch are second names
// (or copies) of files still current in its certificate directory.
func unarchive(arch string, names []string) {
	for _, name := range names {
		os.Remove(filepath.Join(arch, name))
	}
	os.Remove(arch)
}

// stagedFile is a file of a staged install.
type stagedFile struct {
	name string
	data []byte
}

// writeStaged writes each of files completely and fsynced under a
// temporary name in dir and returns those names. On error nothing is
// left behind.
func writeStaged(dir string, files []stagedFile) ([]string, error) {
	tmps := make([]string, 0, len(files))
	for _, f := range files {
		tmp, err := writeTemp(filepath.Join(dir, f.name), f.data, filePerm)
		if err != nil {
			removeTemps(tmps)
			return nil, fmt.Errorf("write %s: %w", filepath.Join(dir, f.name), err)
		}
		tmps = append(tmps, tmp)
	}
	return tmps, nil
}

// removeTemps removes the temporary files of writeStaged not renamed
// into place ("").
func removeTemps(tmps []string) {
	for _, t := range tmps {
		if t != "" {
			os.Remove(t)
		}
	}
}

// renameStaged renames the temporary files of files (written by
// writeStaged) to their names: all but the first in reverse order, then
// fsyncs dir, then the first. The caller makes that last rename durable.
// A renamed file is marked "" in tmps.
func renameStaged(dir string, files []stagedFile, tmps []string) error {
	for i := len(files) - 1; i >= 0; i-- {
		if i == 0 {
			if err := syncDir(dir); err != nil {
				return err
			}
		}
		if err := os.Rename(tmps[i], filepath.Join(dir, files[i].name)); err != nil {
			return fmt.Errorf("write %s: %w", filepath.Join(dir, files[i].name), err)
		}
		tmps[i] = ""
	}
	return nil
}

// finishInstall completes a staged install in dir, if there is one: it
// is both the last step of SaveCertificate and the crash recovery run by
// every certificate method (with dir locked).
//
// States, in the order SaveCertificate creates them:
//
//	meta.json.new,           staging was interrupted (discarded), or
//	cert.pem.new or          the renames after the chain's were lost
//	cert.p12.new, no         (rolled forward; told apart by the serial
//	chain.pem.new            number and the leaf; cert.p12.new, which
//	                         is encrypted, goes with meta.json.new)
//	chain.pem.new present    staged: remove cert.p12 (archived), rename
//	                         pending-key.pem -> key.pem if it is the
//	                         leaf's key, cert.pem.new -> cert.pem,
//	                         remove order.json and renewal.json,
//	                         chain.pem.new -> chain.pem,
//	                         cert.p12.new -> cert.p12 (if staged),
//	                         meta.json.new -> meta.json
//
// The renames of a commit are made durable by one directory fsync at the
// end; a system crash before it may keep any subset of them, each of
// which is one of these states.
func finishInstall(dir string) error {
	if err := removeStaleTemps(dir); err != nil {
		return fmt.Errorf("complete the interrupted install: %w", err)
	}
	stagedChain := filepath.Join(dir, chainFile+stagedSuffix)
	stagedMeta := filepath.Join(dir, metaFile+stagedSuffix)
	data, err := os.ReadFile(stagedChain)
	if errors.Is(err, fs.ErrNotExist) {
		return finishMeta(dir, stagedMeta)
	}
	if err != nil {
		return fmt.Errorf("complete the interrupted install: %w", err)
	}
	chain, err := ParseChain(data)
	if err != nil {
		return fmt.Errorf("complete the interrupted install: %s: %w", stagedChain, err)
	}
	leafPub := chain[0].PublicKey
	if err := os.Remove(filepath.Join(dir, p12File)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("complete the install: %w", err)
	}
	pendingPath := filepath.Join(dir, pendingKeyFile)
	keyPath := filepath.Join(dir, keyFile)
	pending, err := readKey(pendingPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("complete the install: %w", err)
	}
	if pending != nil && publicKeysEqual(pending.Public(), leafPub) {
		if err := os.Rename(pendingPath, keyPath); err != nil {
			return fmt.Errorf("complete the install: %w", err)
		}
	} else {
		cur, err := readKey(keyPath)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("complete the install: %w", err)
		}
		if cur == nil || !publicKeysEqual(cur.Public(), leafPub) {
			return fmt.Errorf("cannot complete the interrupted install: the key of %s is neither in %s nor in %s", stagedChain, pendingPath, keyPath)
		}
	}
	// cert.pem is derived from the staged chain, staged as cert.pem.new
	// (durable before chain.pem.new existed); without it (an install
	// staged by an older version, or its rename done before a crash) it
	// is written from the chain, before the chain is renamed.
	leaf := encodeChain(chain[:1])
	stagedLeaf := filepath.Join(dir, leafFile+stagedSuffix)
	if cur, err := os.ReadFile(stagedLeaf); err == nil && bytes.Equal(cur, leaf) {
		if err := os.Rename(stagedLeaf, filepath.Join(dir, leafFile)); err != nil {
			return fmt.Errorf("complete the install: %w", err)
		}
	} else {
		if err := os.Remove(stagedLeaf); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("complete the install: %w", err)
		}
		if err := WriteFileAtomic(filepath.Join(dir, leafFile), leaf, filePerm); err != nil {
			return fmt.Errorf("complete the install: %w", err)
		}
	}
	// The pending order is done and the renewal state belonged to the
	// previous certificate.
	for _, name := range []string{orderFile, renewalFile} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("complete the install: %w", err)
		}
	}
	if err := os.Rename(stagedChain, filepath.Join(dir, chainFile)); err != nil {
		return fmt.Errorf("complete the install: %w", err)
	}
	// The staged PKCS #12 file goes before meta.json.new: one left
	// without chain.pem.new belongs to the installed chain exactly when
	// meta.json.new does (see finishMeta).
	if err := os.Rename(filepath.Join(dir, p12File+stagedSuffix), filepath.Join(dir, p12File)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("complete the install: %w", err)
	}
	if err := os.Rename(stagedMeta, filepath.Join(dir, metaFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("complete the install: %w", err)
	}
	return syncDir(dir)
}

// removeStaleTemps removes the temporary files (see writeTemp) that a
// process killed in the middle of a write left in the certificate
// directory dir. Every write there holds dir's lock, as the caller does,
// so any such file is stale: a copy of a file written completely under
// its own name (a key's among them: writeFileExclusive links it), or one
// never put in place (for a key: before CertKey returned it, so before
// any CSR was made with it). Left, they pile up, keys included.
func removeStaleTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if name := e.Name(); e.Type().IsRegular() && strings.HasPrefix(name, ".") && strings.Contains(name, tempInfix) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// finishMeta handles a meta.json.new, cert.pem.new or cert.p12.new
// without chain.pem.new: one that belongs to the installed chain is what
// is left of an install interrupted after the chain's rename, so it is
// renamed into place; otherwise staging was interrupted and the stale
// file is removed. cert.p12.new is encrypted: it belongs when
// meta.json.new does (the install renames it before meta.json.new, and
// staging renames it first, before meta.json.new).
func finishMeta(dir, stagedMeta string) error {
	metaData, err := os.ReadFile(stagedMeta)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("complete the interrupted install: %w", err)
	}
	haveMeta := err == nil
	stagedLeaf := filepath.Join(dir, leafFile+stagedSuffix)
	leafData, err := os.ReadFile(stagedLeaf)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("complete the interrupted install: %w", err)
	}
	haveLeaf := err == nil
	stagedP12 := filepath.Join(dir, p12File+stagedSuffix)
	haveP12, err := exists(stagedP12)
	if err != nil {
		return fmt.Errorf("complete the interrupted install: %w", err)
	}
	if !haveMeta && !haveLeaf && !haveP12 {
		return nil
	}
	var installed *x509.Certificate
	if cur, err := os.ReadFile(filepath.Join(dir, chainFile)); err == nil {
		if chain, err := ParseChain(cur); err == nil {
			installed = chain[0]
		}
	}
	settle := func(staged, final string, belongs bool) error {
		var err error
		if belongs {
			err = os.Rename(staged, final)
		} else {
			err = os.Remove(staged)
		}
		if err != nil {
			return fmt.Errorf("complete the interrupted install: %w", err)
		}
		return nil
	}
	if haveLeaf {
		belongs := installed != nil && bytes.Equal(leafData, encodeChain([]*x509.Certificate{installed}))
		if err := settle(stagedLeaf, filepath.Join(dir, leafFile), belongs); err != nil {
			return err
		}
	}
	var m CertMeta
	metaBelongs := haveMeta && json.Unmarshal(metaData, &m) == nil && installed != nil && m.Serial != "" && m.Serial == installed.SerialNumber.Text(16)
	if haveP12 {
		if err := settle(stagedP12, filepath.Join(dir, p12File), metaBelongs); err != nil {
			return err
		}
	}
	if haveMeta {
		if err := settle(stagedMeta, filepath.Join(dir, metaFile), metaBelongs); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// fillFromLeaf sets the fields of m that the leaf certificate determines.
func fillFromLeaf(m *CertMeta, leaf *x509.Certificate) {
	m.Serial = leaf.SerialNumber.Text(16)
	m.NotBefore = leaf.NotBefore.UTC()
	m.NotAfter = leaf.NotAfter.UTC()
}

// LoadCertificate returns email's installed key, chain (leaf first), meta
// and paths, or an error wrapping [ErrNotFound] if there is none. It
// checks that the key is the leaf's. If meta.json is missing, meta is
// rebuilt from the key and leaf. It writes nothing, not even a lock file,
// unless an interrupted install needs completing: a read-only state
// directory can be read.
func (s *Store) LoadCertificate(email string) (key crypto.Signer, chain []*x509.Certificate, meta CertMeta, paths CertPaths, err error) {
	norm, dir, err := s.certDir(email, false)
	if err != nil {
		return nil, nil, CertMeta{}, CertPaths{}, fmt.Errorf("load certificate: %w", err)
	}
	if ok, err := exists(dir); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("no certificate for %s in %s: %w", norm, dir, ErrNotFound)
		}
		return nil, nil, CertMeta{}, CertPaths{}, fmt.Errorf("load certificate: %w", err)
	}
	unlock, err := lockForRead(dir)
	if err != nil {
		return nil, nil, CertMeta{}, CertPaths{}, fmt.Errorf("load certificate for %s: %w", norm, err)
	}
	defer unlock()
	key, chain, meta, err = loadCertificateLocked(norm, dir)
	if err != nil {
		return nil, nil, CertMeta{}, CertPaths{}, fmt.Errorf("load certificate for %s: %w", norm, err)
	}
	return key, chain, meta, pathsIn(dir), nil
}

// loadCertificateLocked reads the installed certificate in dir, locked,
// with any interrupted install completed.
func loadCertificateLocked(norm, dir string) (crypto.Signer, []*x509.Certificate, CertMeta, error) {
	p := pathsIn(dir)
	data, err := os.ReadFile(p.Chain)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, CertMeta{}, fmt.Errorf("%s: %w", p.Chain, ErrNotFound)
	}
	if err != nil {
		return nil, nil, CertMeta{}, err
	}
	chain, err := ParseChain(data)
	if err != nil {
		return nil, nil, CertMeta{}, fmt.Errorf("%s: %w", p.Chain, err)
	}
	key, err := readKey(p.Key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, CertMeta{}, fmt.Errorf("%s is missing", p.Key)
	}
	if err != nil {
		return nil, nil, CertMeta{}, err
	}
	if !publicKeysEqual(key.Public(), chain[0].PublicKey) {
		return nil, nil, CertMeta{}, fmt.Errorf("%s does not hold the key of the certificate in %s", p.Key, p.Chain)
	}
	var meta CertMeta
	data, err = os.ReadFile(p.Meta)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &meta); err != nil {
			return nil, nil, CertMeta{}, fmt.Errorf("parse %s: %w", p.Meta, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		meta.Email = norm
		meta.KeyType, _ = KeyTypeOf(key.Public())
		fillFromLeaf(&meta, chain[0])
	default:
		return nil, nil, CertMeta{}, err
	}
	return key, chain, meta, nil
}

// WritePKCS12 encodes email's installed key and chain with [EncodePKCS12]
// and writes them atomically to cert.p12 (0600), returning its path.
func (s *Store) WritePKCS12(email, password string, profile P12Profile) (string, error) {
	norm, dir, err := s.certDir(email, false)
	if err != nil {
		return "", fmt.Errorf("write PKCS #12: %w", err)
	}
	if ok, err := exists(dir); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("no certificate for %s in %s: %w", norm, dir, ErrNotFound)
		}
		return "", fmt.Errorf("write PKCS #12: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return "", fmt.Errorf("write PKCS #12 for %s: %w", norm, err)
	}
	defer unlock()
	if err := finishInstall(dir); err != nil {
		return "", fmt.Errorf("write PKCS #12 for %s: %w", norm, err)
	}
	key, chain, _, err := loadCertificateLocked(norm, dir)
	if err != nil {
		return "", fmt.Errorf("write PKCS #12 for %s: %w", norm, err)
	}
	data, err := EncodePKCS12(key, chain, password, profile)
	if err != nil {
		return "", fmt.Errorf("write PKCS #12 for %s: %w", norm, err)
	}
	path := filepath.Join(dir, p12File)
	if err := WriteFileAtomic(path, data, filePerm); err != nil {
		return "", fmt.Errorf("write PKCS #12 for %s: %w", norm, err)
	}
	return path, nil
}

// ListCertificates returns the (normalized) addresses that have an
// installed certificate, sorted.
func (s *Store) ListCertificates() ([]string, error) {
	return s.certDirs(func(dir string) bool {
		for _, name := range []string{chainFile, chainFile + stagedSuffix} {
			if ok, _ := exists(filepath.Join(dir, name)); ok {
				return true
			}
		}
		return false
	})
}

// certDirs returns, sorted, the normalized addresses of the certificate
// directories (one per address, see [Store.dirName]) for which keep,
// given the directory's path, says yes.
func (s *Store) certDirs(keep func(dir string) bool) ([]string, error) {
	root, normalize := filepath.Join(s.Dir, certificatesDir), NormalizeEmail
	if s.servers {
		root, normalize = filepath.Join(s.Dir, serversDir), NormalizeHost
	}
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		n, err := normalize(e.Name())
		if err != nil || n != e.Name() && (s.servers || s.dirName(n) != e.Name()) {
			continue
		}
		if keep(filepath.Join(root, e.Name())) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// ParseChain decodes a PEM certificate chain (leaf first), as stored in
// chain.pem or downloaded from an ACME CA. Text between blocks is ignored;
// blocks of any type other than CERTIFICATE are an error (a chain must
// never smuggle in a key).
func ParseChain(data []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("parse certificate chain: unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate chain: certificate %d: %w", len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("parse certificate chain: no certificate found")
	}
	return chain, nil
}

func encodeChain(chain []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range chain {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}
