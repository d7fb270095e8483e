package queryapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// ShutdownGrace is how long Serve lets in-flight requests finish once its
// context is done.
const ShutdownGrace = 5 * time.Second

// Serve listens on addr and serves h until ctx is done, then shuts down
// gracefully (see ServeListener). log may be nil.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("queryapi: listen on %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, h, log)
}

// ServeListener serves h on ln until ctx is done, then stops accepting,
// waits up to ShutdownGrace for in-flight requests and closes ln. It returns
// nil after a clean shutdown, an error if serving failed or requests were
// still running when the grace ran out (they are then cut off). log may be
// nil. Request contexts do not derive from ctx, so cancelling ctx lets
// in-flight requests finish rather than failing them.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// running counts requests being handled: at the end of the grace, the
	// connections net/http still waits for may hold none (it keeps a new
	// connection that has sent nothing yet for five seconds).
	var running atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			running.Add(1)
			defer running.Add(-1)
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.DebugContext(ctx, "http server listening", "addr", ln.Addr().String()) // the caller says where it serves

	select {
	case err := <-served:
		// Serve only returns early on a listener failure.
		_ = srv.Close()
		return fmt.Errorf("queryapi: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if err != nil {
		n := running.Load()
		_ = srv.Close()
		if n == 0 {
			// Only connections without a request were left: closing them
			// cuts nothing off.
			err = nil
		} else {
			err = fmt.Errorf("queryapi: shutdown on %s: %d requests still running after %v: %w", ln.Addr(), n, ShutdownGrace, err)
		}
	}
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("queryapi: serve on %s: %w", ln.Addr(), serveErr))
	}
	if err == nil {
		log.InfoContext(ctx, "http server stopped", "addr", ln.Addr().String())
	}
	return err
}
