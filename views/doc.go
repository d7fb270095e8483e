// Package views is the typed read side: Get, List by secondary index and Scan
// over the tables held by the local storage engine — the partitions a processor
// owns, its hot standbys, or a full replica kept by a goka view.
//
// A view answers only when it can answer correctly. While any partition it needs
// is missing or still restoring it returns a *NotReadyError carrying restore
// progress and a retry delay (queryapi turns that into 503 with Retry-After);
// ErrNotFound means the view is caught up and the key is absent. A caller that
// accepts a stale answer says so with WithStaleReads: the view then reads any
// local copy, restored or not, and reports how many changelog records it lagged.
//
// A view does not know which instance owns a partition; routing a key to its
// owner is the caller's business (see streamfold.Runtime.Place).
package views
