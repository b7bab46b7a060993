package keystore

// Space is what a file system has free.
type Space struct {
	Bytes uint64
	Files int64 // inodes; -1 when the file system does not count them
}
