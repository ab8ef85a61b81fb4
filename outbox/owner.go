package outbox

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
)

// NewOwner returns a lease owner id unique per opened store:
// "<hostname>-<pid>-<8 random hex digits>".
func NewOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails; it crashes the program instead
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
