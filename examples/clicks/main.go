// Command clicks is the smallest streamfold service: it counts clicks per
// page from the clicks topic into a table and serves GET /counts/{page}.
//
//	go run ./examples/clicks            # an embedded broker on 127.0.0.1:9093, HTTP on 127.0.0.1:8081
//	go run ./examples/clicks --brokers kafka:9092
//
// Any producer can click; records are CloudEvents keyed by the page:
//
//	echo 'home:{"specversion":"1.0","id":"c-1","source":"urn:kcat","type":"Clicked","subject":"home"}' |
//	  kcat -P -b 127.0.0.1:9093 -t clicks -K: -X partitioner=murmur2_random
//	curl -s localhost:8081/counts/home  # {"page":"home","clicks":1}
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/serve"
	"github.com/streamfold/streamfold/tables"
	"github.com/streamfold/streamfold/views"
)

// clicks is the input: one CloudEvent per click, keyed by page.
var clicks = tables.NewStream[codecs.Event]("clicks", codecs.CloudEvents{})

// Count is a page's number of clicks.
type Count struct {
	Page   string `json:"page"`
	Clicks int    `json:"clicks"`
}

// count folds one click into its page's count.
func count(c *Count, click codecs.Event) (*Count, error) {
	if c == nil {
		c = &Count{Page: click.Subject}
	}
	c.Clicks++
	return c, nil
}

// open folds clicks into the counts group's table and serves it on addr.
func open(ctx context.Context, brokers []string, dataDir, addr string) (*serve.Server, error) {
	g := processors.NewGroup("counts")
	counts := processors.Project(g, clicks, count)
	topo := streamfold.NewTopology().AddGroup(g)
	srv, err := serve.Open(ctx, topo, streamfold.Config{Brokers: brokers, StateDir: dataDir}, addr, serve.Options{})
	if err != nil {
		return nil, err
	}
	srv.Resource("counts", views.New(srv.Runtime(), counts), nil)
	return srv, nil
}

func main() {
	brokers := flag.String("brokers", "", "comma-separated Kafka bootstrap servers; empty runs an embedded broker")
	listen := flag.String("kafka-listen", "127.0.0.1:9093", "where the embedded broker listens")
	addr := flag.String("http", "127.0.0.1:8081", "where the HTTP API listens")
	data := flag.String("data-dir", "./data/clicks", "local state (and the embedded broker's log)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *brokers, *listen, *addr, *data); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

// run starts the embedded broker unless brokers are given, then folds and
// serves until ctx ends.
func run(ctx context.Context, brokers, listen, addr, data string) error {
	addrs := strings.Split(brokers, ",")
	if brokers == "" {
		b, err := embedded.Start(embedded.Config{Dir: filepath.Join(data, "kafka"), Listen: listen})
		if err != nil {
			return err
		}
		defer b.Close()
		addrs = b.Addrs()
	}
	srv, err := open(ctx, addrs, filepath.Join(data, "state"), addr)
	if err != nil {
		return err
	}
	log.Printf("serving GET http://%s/counts/{page}", srv.Addr())
	return srv.Run(ctx)
}
