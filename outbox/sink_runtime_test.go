package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/codecs"
	"github.com/streamfold/streamfold/outbox"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/tables"
)

// sinkEvolve folds "Named" events (data: the name) into a customer and
// erases it on "Erased", as the shop's customers group does.
func sinkEvolve(c *sinkCustomer, ev codecs.Event) (*sinkCustomer, error) {
	switch ev.Type {
	case "Named":
		var name string
		if err := ev.DataAs(&name); err != nil {
			return nil, err
		}
		next := sinkCustomer{ID: ev.Subject, Name: name, State: "active"}
		if c != nil {
			next.Version = c.Version
		}
		next.Version++
		return &next, nil
	case "Erased":
		return nil, nil
	}
	return nil, fmt.Errorf("unknown event type %q", ev.Type)
}

func TestSink_GivenARealGroupFoldingEvents_WhenItsTableIsSunk_ThenTheSQLTableFollowsTheFold(t *testing.T) {
	brokers := startBroker(t)
	databases(t, func(t *testing.T, db *outbox.DB) {
		events := tables.NewStream[codecs.Event]("people-events-"+string(db.Dialect), codecs.CloudEvents{})
		g := processors.NewGroup("people-" + string(db.Dialect))
		people := processors.Project(g, events, sinkEvolve)
		rt, err := streamfold.Open(context.Background(), streamfold.NewTopology().AddGroup(g), streamfold.Config{Brokers: brokers, StateDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- rt.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("runtime: %v", err)
			}
		})

		sinkSchema(t, db, "customers")
		sinkRunning(t, &outbox.Sink[sinkCustomer]{
			Name: "people-sql", DB: db, Kafka: outbox.Kafka{Brokers: brokers},
			Source: outbox.TableSource(people), Apply: sinkRows("customers").Apply,
		})

		emit := streamfold.NewEmitter(rt, events)
		want := map[string]sinkCustomer{}
		for i := range 30 {
			id := fmt.Sprintf("p%d", i%8)
			ev, err := codecs.NewEvent("urn:test", "Named", id, fmt.Sprintf("name %d", i))
			if err != nil {
				t.Fatal(err)
			}
			if i%8 == 3 && i > 20 {
				ev.Type, ev.Data = "Erased", nil
			}
			if _, err := emit.Emit(ctx, id, ev); err != nil {
				t.Fatal(err)
			}
			next, _ := sinkEvolve(ptrOf(want, id), ev)
			if next == nil {
				delete(want, id)
			} else {
				want[id] = *next
			}
		}
		deadline := time.Now().Add(sinkWait)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for !reflect.DeepEqual(sinkContent(t, db, "customers"), want) {
			if time.Now().After(deadline) {
				sameContent(t, sinkContent(t, db, "customers"), want)
				t.Fatalf("after %s the read model is not the fold", sinkWait)
			}
			<-tick.C
		}
	})
}

func ptrOf(m map[string]sinkCustomer, k string) *sinkCustomer {
	if c, ok := m[k]; ok {
		return &c
	}
	return nil
}
