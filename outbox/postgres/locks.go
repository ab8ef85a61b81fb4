package postgres

import (
	"cmp"
	"hash/fnv"
	"slices"

	"github.com/jackc/pgx/v5"
)

// Advisory lock spaces (the first key of the two-key form), one per use,
// so a lock of one kind never blocks another.
const (
	lockSpaceLeader  int32 = 0x534d5301
	lockSpaceMigrate int32 = 0x534d5302
	// lockSpaceGroup serialises the guards that read and write one
	// group's state: the resolved rule and duplicate suppression.
	lockSpaceGroup int32 = 0x534d5303
	// lockSpaceNumber serialises what decides about one number's
	// deliveries: Admit, Release, and CancelHeld in Enqueue.
	lockSpaceNumber int32 = 0x534d5304
	// lockSpaceOnce and lockSpaceDeliveryID serialise the check and the
	// write of a once key and of a sender's delivery id.
	lockSpaceOnce       int32 = 0x534d5305
	lockSpaceDeliveryID int32 = 0x534d5306
	// lockSpaceReply serialises the choice of reply codes per number
	// (Enqueue), lockSpaceAck the acknowledgement of a group, lockSpaceReceipt
	// the match of a receipt to a number's delivery, lockSpaceRate the
	// count of one Allow key.
	lockSpaceReply   int32 = 0x534d5307
	lockSpaceAck     int32 = 0x534d5308
	lockSpaceReceipt int32 = 0x534d5309
	lockSpaceRate    int32 = 0x534d530a
)

// xactLock is one transaction-level advisory lock.
type xactLock struct{ space, key int32 }

// lockOf returns the lock of name in space on this backing. Two names may
// share a key: they then only wait for each other, which is harmless.
func (s *Store) lockOf(space int32, name string) xactLock {
	h := fnv.New32a()
	h.Write([]byte(s.schema))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return xactLock{space: space, key: int32(h.Sum32())}
}

// queueLocks queues the taking of locks on b, each once, in one global
// order (space, then key). Every transaction takes its advisory locks this
// way and before any row lock, so two transactions never wait for each
// other in a cycle: advisory locks, then delivery id and resolved-alert
// rows, then deliveries rows (by id), then budget rows (by day).
func queueLocks(b *pgx.Batch, locks []xactLock) {
	locks = slices.Clone(locks)
	slices.SortFunc(locks, func(a, b xactLock) int {
		return cmp.Or(cmp.Compare(a.space, b.space), cmp.Compare(a.key, b.key))
	})
	locks = slices.Compact(locks)
	for _, l := range locks {
		b.Queue(`SELECT pg_advisory_xact_lock($1, $2)`, l.space, l.key)
	}
}
