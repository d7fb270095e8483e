package tables

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/syndtr/goleveldb/leveldb"
	lerrors "github.com/syndtr/goleveldb/leveldb/errors"
	lstorage "github.com/syndtr/goleveldb/leveldb/storage"
)

// A store meets two kinds of storage faults:
//
//   - Broken: LevelDB reported corruption (a damaged journal, manifest or
//     table block), at open, on a read or on a write. The local state can no
//     longer be trusted, not even the parts that still read: the store
//     refuses reads and writes (ErrStoreBroken), leaves a marker file in its
//     directory, and the next Open (in this process or after a restart)
//     wipes it and restores it from the changelog.
//   - Failed: a write failed for another reason, a full disk typically. What
//     was written is right, but the write that failed is lost, so the store
//     refuses further writes (ErrStoreFailed) until it is reopened; reads
//     still answer. Nothing is wiped.
//
// Either way the owner of the partition has to close the store and open it
// again (goka: restart the processor); WithFaultHandler tells it when.
var (
	// ErrStoreBroken is returned by a store whose local state is corrupted;
	// it is rebuilt from the changelog when it is next opened.
	ErrStoreBroken = errors.New("store broken: local state corrupted, rebuilt from the changelog when reopened")
	// ErrStoreFailed is returned by writes to a store whose write failed
	// (a full disk); reopening the store retries.
	ErrStoreFailed = errors.New("store write failed; reopen to retry")
)

// storeBrokenMarker is the file that records in a store's directory that the
// store is broken, so that the next Open rebuilds it even after a crash.
const storeBrokenMarker = "BROKEN"

// WithFaultHandler calls fn when a store of the engine breaks (corruption)
// or a write fails (a full disk), once per store and kind, on the goroutine
// that met the fault (a reader's, the writer's); fn must not block. err
// wraps ErrStoreBroken or ErrStoreFailed. The store's owner should close and
// reopen it: a broken store is rebuilt on Open, a failed one retries.
func WithFaultHandler(fn func(topic string, partition int32, err error)) EngineOption {
	return func(o *engineOptions) { o.onFault = fn }
}

// EngineStats are an engine's storage fault counters since it was created.
type EngineStats struct {
	// Broken counts stores found corrupted (at open, on a read or a write).
	Broken int64
	// FailedWrites counts stores whose write failed for another reason.
	FailedWrites int64
	// Rebuilt counts stores wiped at Open to be restored from the changelog,
	// whatever the reason (corruption, another layout, ahead of the changelog).
	Rebuilt int64
}

// Stats returns the engine's fault counters.
func (e *Engine) Stats() EngineStats {
	return EngineStats{Broken: e.broken.Load(), FailedWrites: e.failedWrites.Load(), Rebuilt: e.rebuilt.Load()}
}

// storeFault is a store's fault; err wraps ErrStoreBroken or ErrStoreFailed.
type storeFault struct {
	err    error
	broken bool
}

// Fault returns nil while the store is sound, else an error wrapping
// ErrStoreBroken or ErrStoreFailed with the cause. A store at fault is out
// of service: answer its keys "not ready" and reopen it.
func (s *Store) Fault() error {
	if f := s.fault.Load(); f != nil {
		return f.err
	}
	return nil
}

// Broken reports whether the store found its local state corrupted.
func (s *Store) Broken() bool {
	f := s.fault.Load()
	return f != nil && f.broken
}

// brokenErr returns the error of a broken store, nil otherwise.
func (s *Store) brokenErr() error {
	if f := s.fault.Load(); f != nil && f.broken {
		return f.err
	}
	return nil
}

// isCorrupted reports whether err (wrapped or not) is LevelDB's corruption.
// ErrReadOnly is what LevelDB answers after a compaction met a damaged table.
func isCorrupted(err error) bool {
	var ec *lerrors.ErrCorrupted
	var sc *lstorage.ErrCorrupted
	return errors.As(err, &ec) || errors.As(err, &sc) || errors.Is(err, leveldb.ErrReadOnly)
}

// storeDiskFault reports whether err is the disk's fault: full, over quota,
// failing, or the state LevelDB found damaged.
func storeDiskFault(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EIO) || isCorrupted(err)
}

// readErr classifies the error of a LevelDB read: corruption breaks the
// store and is returned wrapped in ErrStoreBroken.
func (s *Store) readErr(err error) error {
	if isCorrupted(err) {
		return s.markBroken(err)
	}
	return err
}

// writeFault classifies the error of a LevelDB write: corruption breaks the
// store, anything else fails it. The caller holds s.mu.
func (s *Store) writeFault(err error) error {
	if isCorrupted(err) {
		return s.markBroken(err)
	}
	if errors.Is(err, ErrStoreBroken) || errors.Is(err, ErrStoreFailed) {
		return err
	}
	f := &storeFault{err: fmt.Errorf("%w: %w", ErrStoreFailed, err)}
	if !s.fault.CompareAndSwap(nil, f) {
		return s.fault.Load().err
	}
	s.failed = f.err
	s.engine.failedWrites.Add(1)
	s.log.Warn("local state write failed; partition out of service until the store is reopened",
		"error", err, "disk_full", errors.Is(err, syscall.ENOSPC))
	if fn := s.engine.opts.onFault; fn != nil {
		fn(s.topic, s.partition, f.err)
	}
	return f.err
}

// markBroken takes the store out of service for good: reads and writes fail
// with ErrStoreBroken from now on, and the next Open rebuilds it. It returns
// the store's broken error. Any goroutine may call it.
func (s *Store) markBroken(cause error) error {
	f := &storeFault{err: fmt.Errorf("%w: %w", ErrStoreBroken, cause), broken: true}
	for {
		old := s.fault.Load()
		if old != nil && old.broken {
			return old.err
		}
		if s.fault.CompareAndSwap(old, f) {
			break
		}
	}
	s.engine.remember(s, cause)
	if err := os.WriteFile(filepath.Join(s.path, storeBrokenMarker), []byte(cause.Error()+"\n"), 0o644); err != nil {
		s.log.Error("cannot mark the store broken on disk; only this process will rebuild it", "error", err)
	}
	s.engine.broken.Add(1)
	s.log.Warn("local state corrupted; partition out of service until rebuilt from the changelog", "error", cause)
	if fn := s.engine.opts.onFault; fn != nil {
		fn(s.topic, s.partition, f.err)
	}
	return f.err
}

// brokenReason returns why the store's directory must be rebuilt before it
// is opened: a marker left by markBroken (here or in an earlier process), or
// "" when there is none.
func (s *Store) brokenReason() string {
	reason := s.engine.recall(s)
	b, err := os.ReadFile(filepath.Join(s.path, storeBrokenMarker))
	switch {
	case err == nil:
		if r := strings.TrimSpace(string(b)); r != "" {
			reason = r
		} else if reason == "" {
			reason = "marked broken"
		}
	case !errors.Is(err, os.ErrNotExist) && reason == "":
		// An unreadable marker is still a marker.
		reason = fmt.Sprintf("broken marker unreadable: %v", err)
	}
	return reason
}

// remember keeps in memory that a store is broken, in case its marker could
// not be written (a full disk).
func (e *Engine) remember(s *Store, cause error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.brokenStores == nil {
		e.brokenStores = map[engineStoreID]string{}
	}
	e.brokenStores[engineStoreID{s.topic, s.partition}] = cause.Error()
}

// recall returns and forgets why a store was marked broken in this process.
func (e *Engine) recall(s *Store) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	id := engineStoreID{s.topic, s.partition}
	r := e.brokenStores[id]
	delete(e.brokenStores, id)
	return r
}
