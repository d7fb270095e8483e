package queryapi

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// cursorMACBytes is how much of the HMAC-SHA256 a cursor carries: 128 bits
// is far beyond guessing over HTTP.
const cursorMACBytes = 16

// cursorSigner authenticates the cursors of list routes: the Lister's Next is
// handed out as "<next>.<mac>", and a cursor that comes back is verified
// before the Lister sees it, so a forged or garbled cursor is a 400 and never
// reaches a store as a key. The MAC covers the resource name, so a cursor of
// one listing does not page another. Safe for concurrent use (read-only).
type cursorSigner struct{ key []byte }

func newCursorSigner(key []byte) cursorSigner {
	if len(key) == 0 {
		// Per process: cursors stay valid while the process runs, which is
		// what a client paging through a listing needs.
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	return cursorSigner{key: key}
}

func (s cursorSigner) mac(resource, next string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(resource))
	m.Write([]byte{0})
	m.Write([]byte(next))
	return m.Sum(nil)[:cursorMACBytes]
}

func (s cursorSigner) sign(resource, next string) string {
	if next == "" {
		return ""
	}
	return next + "." + base64.RawURLEncoding.EncodeToString(s.mac(resource, next))
}

// verify returns the Lister's cursor inside c, or a 400 problem.
func (s cursorSigner) verify(resource, c string) (string, error) {
	if c == "" {
		return "", nil
	}
	bad := BadRequest("query: cursor is not one this API handed out; start again without a cursor")
	i := strings.LastIndexByte(c, '.')
	if i < 0 {
		return "", bad
	}
	next, sig := c[:i], c[i+1:]
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || next == "" || !hmac.Equal(got, s.mac(resource, next)) {
		return "", bad
	}
	return next, nil
}
