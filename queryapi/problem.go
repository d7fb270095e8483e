package queryapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
)

// Problem is an RFC 9457 problem detail. It is both the error a handler or
// lister returns to choose a status and the body written for every error
// response (Content-Type application/problem+json).
//
// A Problem is a plain value: build it, return it, do not mutate it once it
// has been returned (the API may encode it from the request goroutine).
type Problem struct {
	// Type is a URI reference identifying the problem type; empty is
	// written as "about:blank".
	Type string
	// Title is a short summary of the problem type; empty is written as the
	// HTTP status text.
	Title string
	// Status is the HTTP status code; zero is treated as 500.
	Status int
	// Detail explains this occurrence to the client.
	Detail string
	// Instance identifies this occurrence; empty is written as the request
	// path.
	Instance string
	// Extras are extension members, flattened into the JSON object. A key
	// that collides with a standard member is ignored.
	Extras map[string]any
	// Header is added to the response (e.g. WWW-Authenticate on a 401);
	// it is not part of the document.
	Header http.Header
}

// NewProblem returns a Problem with the given status and detail.
func NewProblem(status int, detail string) *Problem {
	return &Problem{Status: status, Detail: detail}
}

// BadRequest returns a 400 Problem.
func BadRequest(detail string) *Problem { return NewProblem(http.StatusBadRequest, detail) }

// NotFound returns a 404 Problem.
func NotFound(detail string) *Problem { return NewProblem(http.StatusNotFound, detail) }

// Conflict returns a 409 Problem; extras (may be nil) become extension
// members, e.g. the current version of an aggregate.
func Conflict(detail string, extras map[string]any) *Problem {
	return &Problem{Status: http.StatusConflict, Detail: detail, Extras: extras}
}

// Unprocessable returns a 422 Problem; extras (may be nil) become extension
// members, e.g. the fields that failed validation.
func Unprocessable(detail string, extras map[string]any) *Problem {
	return &Problem{Status: http.StatusUnprocessableEntity, Detail: detail, Extras: extras}
}

// Unauthorized returns a 401 Problem challenging for a bearer token of realm
// (RFC 6750): the response carries WWW-Authenticate.
func Unauthorized(realm, detail string) *Problem {
	h := http.Header{}
	h.Set("WWW-Authenticate", fmt.Sprintf("Bearer realm=%q", realm))
	return &Problem{Status: http.StatusUnauthorized, Detail: detail, Header: h}
}

// Forbidden returns a 403 Problem.
func Forbidden(detail string) *Problem { return NewProblem(http.StatusForbidden, detail) }

// PayloadTooLarge returns a 413 Problem.
func PayloadTooLarge(detail string) *Problem {
	return NewProblem(http.StatusRequestEntityTooLarge, detail)
}

// UnsupportedMediaType returns a 415 Problem.
func UnsupportedMediaType(detail string) *Problem {
	return NewProblem(http.StatusUnsupportedMediaType, detail)
}

// Error implements error.
func (p *Problem) Error() string {
	if p.Detail == "" {
		return fmt.Sprintf("%s (%d)", p.title(), p.status())
	}
	return fmt.Sprintf("%s (%d): %s", p.title(), p.status(), p.Detail)
}

func (p *Problem) status() int {
	if p.Status == 0 {
		return http.StatusInternalServerError
	}
	return p.Status
}

func (p *Problem) title() string {
	if p.Title != "" {
		return p.Title
	}
	if t := http.StatusText(p.status()); t != "" {
		return t
	}
	return "Error"
}

var standardMembers = map[string]bool{
	"type": true, "title": true, "status": true, "detail": true, "instance": true,
}

// MarshalJSON writes the standard members first, in RFC order, then the
// extras sorted by key.
func (p *Problem) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	member := func(name string, v any) error {
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		buf.Write(k)
		buf.WriteByte(':')
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("problem member %q: %w", name, err)
		}
		buf.Write(b)
		return nil
	}
	typ := p.Type
	if typ == "" {
		typ = "about:blank"
	}
	_ = member("type", typ)
	_ = member("title", p.title())
	_ = member("status", p.status())
	if p.Detail != "" {
		_ = member("detail", p.Detail)
	}
	if p.Instance != "" {
		_ = member("instance", p.Instance)
	}
	for _, k := range slices.Sorted(maps.Keys(p.Extras)) {
		if standardMembers[k] {
			continue
		}
		if err := member(k, p.Extras[k]); err != nil {
			return nil, err
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// UnmarshalJSON reads a problem document; members other than the standard
// ones land in Extras. It lets clients and tests decode error responses.
func (p *Problem) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*p = Problem{}
	fields := map[string]any{
		"type": &p.Type, "title": &p.Title, "status": &p.Status,
		"detail": &p.Detail, "instance": &p.Instance,
	}
	for k, v := range raw {
		if dst, ok := fields[k]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				return fmt.Errorf("problem member %q: %w", k, err)
			}
			continue
		}
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			return fmt.Errorf("problem member %q: %w", k, err)
		}
		if p.Extras == nil {
			p.Extras = make(map[string]any)
		}
		p.Extras[k] = x
	}
	return nil
}
