package serve

import (
	"net/http"

	"github.com/streamfold/streamfold/queryapi"
)

// access is who may do what over HTTP:
//   - operator routes (OperatorEndpoints, AdminOnly) need the admin token;
//     with none configured they are served only on a loopback listener (a
//     developer's machine) and answer 403 elsewhere, so an instance put on
//     a network without thinking about it does not hand out its dead
//     letters;
//   - state-changing routes need the write token when one is configured;
//   - everything else (queries, health, metrics) is open.
type access struct {
	name         string // the realms are <name>-admin and <name>-write
	admin, write string
	hint         string // how the admin token is given; "" for "admin token"
	loopback     bool
	operator     map[string]bool // route templates; filled before serving, read-only after
}

func (a access) guard(r *http.Request, route string) error {
	op := a.operator[route]
	switch {
	case op && a.admin != "":
		return queryapi.RequireBearer(r, a.name+"-admin", a.admin)
	case op && !a.loopback:
		hint := a.hint
		if hint == "" {
			hint = "admin token"
		}
		return queryapi.Forbidden("operator endpoints are disabled: this " + a.name + " listens beyond loopback and has no " + hint)
	case op:
		return nil
	case a.write != "" && !isReadOnly(r.Method):
		return queryapi.RequireBearer(r, a.name+"-write", a.write)
	}
	return nil
}

func isReadOnly(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}
