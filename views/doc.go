// Package views is the typed read side: Get, List by secondary index and Scan
// over the tables held by the local storage engine — the partitions a processor
// owns, or a full replica kept by a goka view.
//
// A view answers only when it can answer correctly. While any partition it needs
// is missing or still restoring it returns a *NotReadyError carrying restore
// progress and a retry delay (queryapi turns that into 503 with Retry-After);
// ErrNotFound means the view is caught up and the key is absent.
package views
