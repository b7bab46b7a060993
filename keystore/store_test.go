package keystore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestDefaultDir(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr bool
	}{
		{"acmemail home wins", map[string]string{"ACMEMAIL_HOME": "/srv/acme/", "XDG_DATA_HOME": "/x", "HOME": "/home/a"}, "/srv/acme", false},
		{"xdg data home", map[string]string{"XDG_DATA_HOME": "/x/data", "HOME": "/home/a"}, "/x/data/acmemail", false},
		{"relative xdg ignored", map[string]string{"XDG_DATA_HOME": "rel", "HOME": "/home/a"}, "/home/a/.local/share/acmemail", false},
		{"home", map[string]string{"HOME": "/home/a"}, "/home/a/.local/share/acmemail", false},
		{"nothing set", map[string]string{}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DefaultDir(func(k string) string { return tt.env[k] })
			if (err != nil) != tt.wantErr {
				t.Fatalf("DefaultDir() error = %v, wantErr %v", err, tt.wantErr)
			}
			if got != filepath.FromSlash(tt.want) {
				t.Errorf("DefaultDir() = %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := DefaultDir(nil); err == nil {
		t.Error("DefaultDir(nil) = nil error, want error")
	}
}

func TestOpen(t *testing.T) {
	base := t.TempDir()
	tests := []struct {
		name  string
		setup func(dir string)
	}{
		{"new nested", func(string) {}},
		{"existing private", func(dir string) { os.MkdirAll(dir, 0o700) }},
		{"existing world readable", func(dir string) { os.MkdirAll(dir, 0o755); os.Chmod(dir, 0o755) }},
		{"existing world writable", func(dir string) { os.MkdirAll(dir, 0o777); os.Chmod(dir, 0o777) }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(base, string(rune('a'+i)), "state")
			tt.setup(dir)
			s, err := Open(dir)
			if err != nil {
				t.Fatalf("Open(%s) = %v", dir, err)
			}
			if s.Dir != dir {
				t.Errorf("Dir = %q, want %q", s.Dir, dir)
			}
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o700 {
				t.Errorf("mode = %v, want 0700", got)
			}
		})
	}

	t.Run("not a directory", func(t *testing.T) {
		f := filepath.Join(base, "file")
		os.WriteFile(f, nil, 0o600)
		if _, err := Open(f); err == nil {
			t.Error("Open(file) = nil error, want error")
		}
	})
	t.Run("empty", func(t *testing.T) {
		if _, err := Open(""); err == nil {
			t.Error(`Open("") = nil error, want error`)
		}
	})
	t.Run("relative made absolute", func(t *testing.T) {
		t.Chdir(t.TempDir())
		s, err := Open("rel")
		if err != nil {
			t.Fatal(err)
		}
		if !filepath.IsAbs(s.Dir) {
			t.Errorf("Dir = %q, want an absolute path", s.Dir)
		}
	})
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, content := range []string{"one", "two, longer", ""} {
		if err := WriteFileAtomic(p, []byte(content), 0o600); err != nil {
			t.Fatalf("WriteFileAtomic = %v", err)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != content {
			t.Errorf("content = %q, want %q", got, content)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1 (temporary files left behind?)", len(entries))
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), nil, 0o600); err == nil {
		t.Error("WriteFileAtomic into a missing directory = nil error, want error")
	}
}

func TestWriteFileExclusive(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k")
	if err := writeFileExclusive(p, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := writeFileExclusive(p, []byte("second"), 0o600)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("second writeFileExclusive = %v, want an error wrapping fs.ErrExist", err)
	}
	got, _ := os.ReadFile(p)
	if string(got) != "first" {
		t.Errorf("content = %q, want %q", got, "first")
	}
}
