package serve

import (
	"context"
	"errors"

	"github.com/streamfold/streamfold"
)

// Open is the one call that brings a topology up for serving: it listens on
// addr, opens topo with cfg (advertising the listener's address to the
// groups unless cfg.Advertise is set) and returns a Server over the new
// runtime. Register the application's resources on it (Runtime gives the
// views their stores), then Run: it processes and serves until ctx ends and
// closes the runtime when it returns.
//
//	srv, err := serve.Open(ctx, topo, streamfold.Config{Brokers: brokers, StateDir: "data"}, "127.0.0.1:8080", serve.Options{})
//	srv.Resource("counts", views.New(srv.Runtime(), counts), nil)
//	err = srv.Run(ctx)
//
// opts.Listener must be nil: Open makes the listener.
func Open(ctx context.Context, topo *streamfold.Topology, cfg streamfold.Config, addr string, opts Options) (_ *Server, err error) {
	if opts.Listener != nil {
		return nil, errors.New("serve: Open makes its own listener; use New for one of yours")
	}
	ln, advertised, err := Listen(addr, cfg.Advertise)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = ln.Close()
		}
	}()
	if cfg.Advertise == "" {
		cfg.Advertise = advertised
	}
	if cfg.Logger == nil {
		cfg.Logger = opts.Logger
	}
	if opts.TracerProvider == nil {
		opts.TracerProvider = cfg.TracerProvider
	}
	rt, err := streamfold.Open(ctx, topo, cfg)
	if err != nil {
		return nil, err
	}
	opts.Listener = ln
	s, err := New(rt, opts)
	if err != nil {
		return nil, errors.Join(err, rt.Close())
	}
	s.owned = rt
	return s, nil
}

// Runtime is the runtime the Server serves, when Open opened it; nil for a
// Server made with New (whose caller has the runtime).
func (s *Server) Runtime() *streamfold.Runtime { return s.owned }
