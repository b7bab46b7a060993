//go:build !(linux || darwin || freebsd)

package keystore

// FreeSpace cannot tell the free space here: ok is false.
func (s *Store) FreeSpace() (sp Space, ok bool, err error) {
	return Space{}, false, nil
}
