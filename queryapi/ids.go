package queryapi

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxIDBytes is the longest id (a path segment or an id in a body) the API
// accepts, in bytes of UTF-8.
const MaxIDBytes = 256

// ValidateID reports whether s is an acceptable id: 1..MaxIDBytes bytes of
// valid UTF-8 without control characters (NUL, CR, LF, BEL, DEL, C1 …) or
// Unicode line and paragraph separators, and not a dot segment ("." or
// "..", which URL paths cannot carry). An id
// ends up in Kafka keys, headers such as Location, logs and terminals, where a
// control character splits lines or ends strings. what names the id in the
// problem's detail ("path segment id", "body: field \"id\""). The error is a
// 400 *Problem.
func ValidateID(what, s string) error {
	switch {
	case s == "":
		return BadRequest(what + " must not be empty")
	case len(s) > MaxIDBytes:
		return BadRequest(fmt.Sprintf("%s is %d bytes long, at most %d allowed", what, len(s), MaxIDBytes))
	case !utf8.ValidString(s):
		return BadRequest(what + " is not valid UTF-8")
	case s == "." || s == "..":
		// A dot segment is removed from any URL path by clients and
		// routers alike: such an id could never be read back.
		return BadRequest(fmt.Sprintf("%s must not be %q", what, s))
	}
	for i := 0; i < len(s); {
		// ASCII, most ids, without the Unicode tables: its control
		// characters are C0 and DEL.
		if b := s[i]; b < utf8.RuneSelf {
			if b < 0x20 || b == 0x7f {
				return BadRequest(fmt.Sprintf("%s contains the control character %U at byte %d", what, rune(b), i))
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if unicode.In(r, unicode.Cc, unicode.Zl, unicode.Zp) {
			return BadRequest(fmt.Sprintf("%s contains the control character %U at byte %d", what, r, i))
		}
		i += n
	}
	return nil
}
