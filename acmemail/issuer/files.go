package issuer

import (
	"crypto/x509"
	"fmt"
	"io"
	"os"
)

// MaxPEMFile bounds a file of PEM certificates acmemail reads (roots).
const MaxPEMFile = 4 << 20

// ReadPEMFile reads a file of PEM certificates: a regular file (not a
// FIFO or a device, which could block or never end) of at most MaxPEMFile
// bytes holding at least one certificate.
func ReadPEMFile(path string) ([]byte, error) {
	data, err := readRegular(path, MaxPEMFile)
	if err != nil {
		return nil, err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return data, nil
}

// ReadFile reads the regular file at path, of at most limit bytes. A FIFO
// or a device (which could block or never end) is refused at once, as is
// a larger file.
func ReadFile(path string, limit int64) ([]byte, error) { return readRegular(path, limit) }

// OpenFile opens path for reading without blocking on a FIFO, and returns
// it with its FileInfo; the caller checks what kind of file it is.
func OpenFile(path string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|nonBlock, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// readRegular reads a regular file of at most limit bytes.
func readRegular(path string, limit int64) ([]byte, error) {
	f, fi, err := OpenFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}
