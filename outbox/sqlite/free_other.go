//go:build !linux

package sqlite

// freeBytes reports -1 (unknown) where no statfs is wired up: the free
// space check and the reserve are then off, and the write probe remains.
func freeBytes(string) (int64, error) { return -1, nil }
