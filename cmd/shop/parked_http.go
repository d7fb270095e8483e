package main

import (
	"errors"
	"net/http"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/queryapi"
	"github.com/streamfold/streamfold/shop"
	"github.com/streamfold/streamfold/views"
)

// registerParked serves GET /parked/{group} (records waiting for a parent, and
// what each waits for) and GET /customers/{id}/carts.
func registerParked(api *queryapi.API, rt *streamfold.Runtime) {
	api.Handle(http.MethodGet, "/parked/{group}", func(r *http.Request) (int, any, error) {
		ps, err := rt.Parked(queryapi.Vars(r)["group"])
		if errors.Is(err, streamfold.ErrUnknownGroup) {
			return 0, nil, queryapi.NotFound(err.Error())
		}
		if err != nil {
			return 0, nil, err
		}
		if ps == nil {
			ps = []streamfold.ParkedRecord{}
		}
		return http.StatusOK, map[string]any{"items": ps}, nil
	})
	carts := views.New(rt, shop.CustomerCartsTable)
	api.Handle(http.MethodGet, "/customers/{id}/carts", func(r *http.Request) (int, any, error) {
		cc, err := carts.Get(r.Context(), queryapi.Vars(r)["id"])
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, cc, nil
	})
}
