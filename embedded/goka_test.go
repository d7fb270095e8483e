package embedded_test

import (
	"context"
	"testing"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"

	"github.com/streamfold/streamfold/embedded"
)

func TestGivenTheEmbeddedBrokerWhenAGokaEmitterWritesThenAGokaViewReadsIt(t *testing.T) {
	b := start(t, embedded.Config{Listen: "127.0.0.1:0"})
	brokers := b.Addrs()

	cfg := goka.DefaultConfig()
	cfg.Version = saramaVersion
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = 1
	tmc.Stream.Replication = 1
	tmb := goka.TopicManagerBuilderWithConfig(cfg, tmc)

	const table = "smoke-table"
	tm, err := tmb(brokers)
	if err != nil {
		t.Fatal(err)
	}
	if err := tm.EnsureTableExists(table, 4); err != nil {
		t.Fatal(err)
	}
	if err := tm.Close(); err != nil {
		t.Fatal(err)
	}

	em, err := goka.NewEmitter(brokers, goka.Stream(table), new(codec.String),
		goka.WithEmitterProducerBuilder(goka.ProducerBuilderWithConfig(cfg)),
		goka.WithEmitterTopicManagerBuilder(tmb))
	if err != nil {
		t.Fatal(err)
	}
	defer em.Finish()
	for _, kv := range [][2]string{{"k1", "v1"}, {"k2", "v2"}, {"k1", "v1b"}} {
		if err := em.EmitSync(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}

	view, err := goka.NewView(brokers, goka.Table(table), new(codec.String),
		goka.WithViewConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(cfg)),
		goka.WithViewTopicManagerBuilder(tmb),
		goka.WithViewStorageBuilder(storage.MemoryBuilder()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- view.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("view: %v", err)
		}
	}()

	get := func(key string) any {
		v, err := view.Get(key)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	eventually(t, "the view recovered the emitted values", func() bool {
		return view.Recovered() && get("k1") == "v1b" && get("k2") == "v2"
	})
	// and keeps following the table
	if err := em.EmitSync("k2", "v2b"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the view saw the update", func() bool { return get("k2") == "v2b" })
}
