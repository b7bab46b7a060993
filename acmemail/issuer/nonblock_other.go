//go:build !unix

package issuer

const nonBlock = 0
