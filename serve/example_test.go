package serve_test

import (
	"context"
	"log"
	"net/http"
	"os/signal"
	"syscall"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/serve"
	"github.com/streamfold/streamfold/shop"
	"github.com/streamfold/streamfold/views"
)

// The smallest server of a topology: listen (the address is advertised at
// Open), open, register what to serve, run until a signal.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ln, advertised, err := serve.Listen(":8080", "")
	if err != nil {
		log.Fatal(err)
	}
	rt, err := streamfold.Open(ctx, shop.Topology(8, nil), streamfold.Config{
		Brokers: []string{"localhost:9092"}, StateDir: "./state", Advertise: advertised,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()
	srv, err := serve.New(rt, serve.Options{Listener: ln})
	if err != nil {
		log.Fatal(err)
	}
	// GET /customers/{id}, answered by the owner of the id's partition.
	customers := views.New(rt, shop.CustomersTable)
	srv.Resource("customers", customers, &serve.Lister[shop.Customer]{View: customers})
	// GET /carts/{id}/events, a sub-resource keyed by {id}.
	srv.Get("/carts/{id}/events", views.New(rt, shop.CartHistoryTable))
	// A handler reading one key's partition says which table the key is in.
	srv.Handle(http.MethodDelete, "/customers/{id}", func(r *http.Request) (int, any, error) {
		return http.StatusAccepted, nil, nil
	}, serve.KeyFromPath(customers.Name(), "id"))
	srv.OperatorEndpoints()
	if err := srv.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
