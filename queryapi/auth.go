package queryapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// RequireBearer checks that r carries "Authorization: Bearer <token>". It
// returns nil when it does and a 401 problem with a WWW-Authenticate
// challenge for realm when the header is missing or the token is wrong. The
// comparison takes the same time whatever the token sent (both sides are
// hashed first, so not even the length leaks). An empty token is never
// accepted: a caller that configured none must decide what that means.
func RequireBearer(r *http.Request, realm, token string) error {
	h := r.Header.Get("Authorization")
	scheme, got, ok := strings.Cut(h, " ")
	if h == "" {
		return Unauthorized(realm, "this endpoint needs Authorization: Bearer <token>")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || !tokenEqual(strings.TrimSpace(got), token) {
		return Unauthorized(realm, "the bearer token is missing or wrong")
	}
	return nil
}

func tokenEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
