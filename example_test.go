package streamfold_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/serve"
	"github.com/streamfold/streamfold/tables"
	"github.com/streamfold/streamfold/views"
)

// PageCount is a page's number of clicks.
type PageCount struct {
	Page   string `json:"page"`
	Clicks int    `json:"clicks"`
}

// The smallest program: fold a topic of clicks into a table of counts per
// page and serve it over HTTP. The group derives its table
// (page-counts-table) and hands back its typed handle; serve.Open creates
// the topics, opens the stores and listens; Run processes and serves until
// the context ends. Here it runs on an in-process broker and clicks itself.
func Example() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	broker, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer broker.Close()
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	clicks := tables.NewStream[codecs.Event]("page-clicks", codecs.CloudEvents{})
	g := processors.NewGroup("page-counts")
	counts := processors.Project(g, clicks, func(c *PageCount, click codecs.Event) (*PageCount, error) {
		if c == nil {
			c = &PageCount{Page: click.Subject}
		}
		c.Clicks++
		return c, nil
	})
	topo := streamfold.NewTopology().AddGroup(g)
	srv, err := serve.Open(ctx, topo, streamfold.Config{Brokers: broker.Addrs(), StateDir: dir}, "127.0.0.1:0", serve.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv.Resource("counts", views.New(srv.Runtime(), counts), nil)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	emit := streamfold.NewEmitter(srv.Runtime(), clicks)
	for i := range 3 {
		ev := codecs.Event{SpecVersion: "1.0", ID: fmt.Sprint("click-", i), Source: "urn:example", Type: "Clicked", Subject: "home"}
		if _, err := emit.Emit(ctx, "home", ev); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Println(awaitBody("http://"+srv.Addr().String()+"/counts/home", `{"page":"home","clicks":3}`))
	stop()
	fmt.Println("stopped:", <-done)
	// Output:
	// {"page":"home","clicks":3}
	// stopped: <nil>
}

// awaitBody GETs url until it answers want (the fold is asynchronous), or
// returns the last answer after a while.
func awaitBody(url, want string) string {
	var last string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			last = err.Error()
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if last = string(b); last == want {
			break
		}
	}
	return last
}
