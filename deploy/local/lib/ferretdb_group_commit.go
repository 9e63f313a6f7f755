// hitl: group commit for FerretDB 1.24's SQLite backend, copied into
// internal/util/fsql by deploy/local/lib/ferretdb.sh when it builds FerretDB.
//
// SQLite commits one write transaction at a time, and with durable commits
// (synchronous=full) each commit costs a WAL fsync. hitl's services write one
// document per command (unique-key inserts are their compare-and-swap), so under
// load many small transactions queue for the one writer. Here, write transactions
// that arrive while another is being committed wait, then go together: one SQLite
// transaction, each caller's work inside its own SAVEPOINT, one COMMIT (one fsync).
//
// What a caller sees is what it saw before:
//   - its function runs alone inside its savepoint; if it returns an error, its
//     writes are rolled back to the savepoint and it gets that error, the others
//     in the group are unaffected;
//   - it is told success only after the COMMIT that made its writes durable; if the
//     group's COMMIT (or a savepoint statement) fails, nothing of the group was
//     committed and every caller gets the error;
//   - if SQLite rolled the whole transaction back under a caller (an interrupted
//     statement: its context was cancelled), the next savepoint statement fails, so
//     nothing runs outside the transaction and the whole group fails as above.
//
// A group holds at most groupMax callers. With nothing else waiting, a transaction
// runs alone exactly as before (no savepoint).

package fsql

import (
	"context"
	"fmt"
	"sync"

	"github.com/FerretDB/FerretDB/internal/util/lazyerrors"
)

const groupMax = 128

type groupCall struct {
	ctx  context.Context
	f    func(*Tx) error
	done chan error
}

type groupQueue struct {
	mu      sync.Mutex
	waiting []*groupCall
	leading bool // someone commits the waiting calls; no one else starts
}

// InTransaction runs f in a write transaction, committed together with the write
// transactions of other callers that arrive meanwhile (see above).
//
// If f returns an error or the context is canceled, f's writes are rolled back.
func (db *DB) InTransaction(ctx context.Context, f func(*Tx) error) error {
	call := &groupCall{ctx: ctx, f: f, done: make(chan error, 1)}

	g := &db.group
	g.mu.Lock()
	g.waiting = append(g.waiting, call)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()

	if lead {
		// Commit one group (it holds this call), then hand the rest to a goroutine
		// so that this caller does not wait for groups that came after its own.
		if db.commitNextGroup() {
			go db.commitGroupsUntilEmpty()
		}
	}

	return <-call.done
}

func (db *DB) commitGroupsUntilEmpty() {
	for db.commitNextGroup() {
	}
}

// commitNextGroup commits the waiting calls (up to groupMax) as one transaction.
// It returns true if calls are still waiting; false means leadership was released.
func (db *DB) commitNextGroup() bool {
	g := &db.group
	g.mu.Lock()
	n := min(len(g.waiting), groupMax)
	group := g.waiting[:n:n]
	g.waiting = g.waiting[n:]
	g.mu.Unlock()

	if n > 0 {
		db.commitGroup(group)
	}

	g.mu.Lock()
	defer g.mu.Unlock()

	if len(g.waiting) == 0 {
		g.leading = false
		return false
	}

	return true
}

func (db *DB) commitGroup(group []*groupCall) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()

	if len(group) == 1 {
		call := group[0]
		call.done <- db.inTransactionAlone(call.ctx, func(tx *Tx) error { return runGuarded(call.f, tx) })

		return
	}

	errs := make([]error, len(group))

	// The transaction itself is not tied to any one caller's context: one caller
	// giving up must not roll back the others (its own statements still use its ctx).
	err := db.inTransactionAlone(context.Background(), func(tx *Tx) error {
		for i, call := range group {
			if err := call.ctx.Err(); err != nil {
				errs[i] = lazyerrors.Error(err)
				continue
			}

			savepoint := fmt.Sprintf("hitl_group_%d", i)
			if _, err := tx.ExecContext(context.Background(), "SAVEPOINT "+savepoint); err != nil {
				return lazyerrors.Error(err)
			}

			if errs[i] = runGuarded(call.f, tx); errs[i] != nil {
				if _, err := tx.ExecContext(context.Background(), "ROLLBACK TO "+savepoint); err != nil {
					return lazyerrors.Error(err)
				}
			}

			if _, err := tx.ExecContext(context.Background(), "RELEASE "+savepoint); err != nil {
				return lazyerrors.Error(err)
			}
		}

		return nil
	})

	for i, call := range group {
		if err != nil && errs[i] == nil {
			// Nothing of the group was committed.
			errs[i] = err
		}

		call.done <- errs[i]
	}
}

// runGuarded runs f, turning a panic into an error: f may belong to another
// connection than the goroutine running it, which must go on serving the group.
func runGuarded(f func(*Tx) error, tx *Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = lazyerrors.Errorf("panic in transaction: %v", p)
		}
	}()

	return f(tx)
}
