package queryapi

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"time"
)

// The interfaces below are how errors from other packages choose their
// status without importing queryapi. They are matched anywhere in the error
// tree (wrapped with %w or joined), first match in errors.As order.
type (
	notFounder    interface{ NotFound() bool }
	retryAfterer  interface{ RetryAfter() time.Duration }
	progresser    interface{ Progress() any }
	conflicter    interface{ Conflict() bool }
	problemExtras interface{ ProblemExtras() map[string]any }
)

// StatusClientClosedRequest is recorded (in logs and metrics) when the
// client went away before the answer was ready; nothing useful reaches the
// client. The code is nginx's; net/http has no name for it.
const StatusClientClosedRequest = 499

// genericDetail is all a client learns about an unclassified error; the
// cause goes to the log.
const genericDetail = "internal error; the cause has been logged"

// classified is an error turned into a response.
type classified struct {
	problem    *Problem
	retryAfter time.Duration // > 0: send Retry-After
	cause      error         // the original error, for the log
}

// classify maps err to the problem to write. ctx is the request's context; it
// tells a client that went away apart from an internal cancellation.
func classify(ctx context.Context, err error) classified {
	c := classified{cause: err}
	var p *Problem
	switch {
	case errors.As(err, &p):
		cp := *p
		cp.Status = p.status()
		c.problem = &cp
		return c
	case errors.Is(err, context.DeadlineExceeded):
		c.problem = NewProblem(http.StatusGatewayTimeout, "the request timed out")
		return c
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		c.problem = NewProblem(StatusClientClosedRequest, "the client closed the request")
		c.problem.Title = "Client Closed Request"
		return c
	}
	if _, ok := find(err, func(e notFounder) bool { return e.NotFound() }); ok {
		c.problem = &Problem{Status: http.StatusNotFound, Detail: err.Error(), Extras: extrasOf(err)}
		return c
	}
	if ra, ok := find(err, func(retryAfterer) bool { return true }); ok {
		extras := extrasOf(err)
		if pr, ok := find(err, func(progresser) bool { return true }); ok {
			if extras == nil {
				extras = make(map[string]any, 1)
			}
			extras["progress"] = pr.Progress()
		}
		c.problem = &Problem{Status: http.StatusServiceUnavailable, Detail: err.Error(), Extras: extras}
		c.retryAfter = max(ra.RetryAfter(), time.Nanosecond) // always send the header
		return c
	}
	if _, ok := find(err, func(e conflicter) bool { return e.Conflict() }); ok {
		c.problem = &Problem{Status: http.StatusConflict, Detail: err.Error(), Extras: extrasOf(err)}
		return c
	}
	c.problem = NewProblem(http.StatusInternalServerError, genericDetail)
	return c
}

// extrasOf returns a copy of the first ProblemExtras in err's tree, or nil.
func extrasOf(err error) map[string]any {
	pe, ok := find(err, func(problemExtras) bool { return true })
	if !ok {
		return nil
	}
	return maps.Clone(pe.ProblemExtras())
}

// retryAfterSeconds rounds d up to whole seconds, at least 1, as the
// Retry-After header wants.
func retryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// find walks err's tree depth-first, like errors.As, and returns the first
// error of type T for which match reports true. Unlike errors.As it keeps
// looking past an error whose method says no (NotFound() == false).
func find[T any](err error, match func(T) bool) (T, bool) {
	stack := []error{err}
	for len(stack) > 0 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if e == nil {
			continue
		}
		if t, ok := e.(T); ok && match(t) {
			return t, true
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			stack = append(stack, u.Unwrap())
		case interface{ Unwrap() []error }:
			errs := u.Unwrap()
			for i := len(errs) - 1; i >= 0; i-- {
				stack = append(stack, errs[i])
			}
		}
	}
	var zero T
	return zero, false
}
