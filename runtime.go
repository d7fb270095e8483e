package streamfold

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/streamfold/streamfold/internal/bootstrap"
	"github.com/streamfold/streamfold/internal/groups"
	"github.com/streamfold/streamfold/internal/kafkaconf"
	"github.com/streamfold/streamfold/internal/membership"
	"github.com/streamfold/streamfold/internal/producer"
	"github.com/streamfold/streamfold/internal/restart"
	"github.com/streamfold/streamfold/internal/topics"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/tables"
)

// Config is what Open needs to run a topology. The application fills it (from
// flags, env) in its main package; the library reads no environment.
type Config struct {
	// Brokers are the Kafka bootstrap addresses.
	Brokers []string
	// StateDir holds the local table stores; required (no temp-dir default).
	StateDir string
	// Replication is the replication factor of topics we create. Zero (or
	// -1) leaves it to the broker: its default.replication.factor (Kafka
	// 2.4+), which is 1 on the embedded broker.
	Replication int
	// ClientID prefixes every Kafka client's id; default "streamfold".
	ClientID string
	// SessionTimeout is the consumer-group session timeout: how long a member
	// that died goes unnoticed before its partitions move. Default 10 s.
	SessionTimeout time.Duration
	// Logger; nil discards.
	Logger *slog.Logger

	// Groups names the processor groups this instance runs: nil runs every
	// group of the topology, an empty non-nil slice none. Every topic is
	// created either way. Any number of instances may run the same group:
	// they share its partitions as members of one consumer group.
	Groups []string
	// Replicas keeps a full read replica of every table the topology
	// declares as read outside its groups (Topology.ReadBy) whose group does
	// not run here: a goka view restored from the changelog into its own
	// state directory, so that views answer for every key locally.
	Replicas bool
	// Standby keeps hot copies of the partitions of the running groups'
	// tables that this instance does not own (goka's hot standby): a
	// failover serves at once, and stale reads find a local copy. It costs a
	// full copy of each table and longer rebalances.
	Standby bool
	// StoreMemory is the budget, in bytes, of the local stores' LevelDB
	// memtables and block caches, shared by every table partition this
	// instance may hold (tables.WithMemory); default DefaultStoreMemory.
	StoreMemory int
	// Advertise is this instance's query address (host:port), sent to the
	// groups in its member metadata so that any instance can route a key's
	// query to the partition's owner (see Runtime.Place); empty advertises
	// none.
	Advertise string
	// Security is TLS and SASL for every client; the zero value is
	// plaintext.
	Security Security
	// TracerProvider, when set, traces records across hops with
	// OpenTelemetry: an Emitter sends each record in a span and writes its
	// W3C trace context into the record (HeaderTraceParent), and every
	// group handles each record in a span, a child of the context the
	// record carries, whose context goes on every record it emits
	// meanwhile (events, replies, outputs). nil, the default, traces
	// nothing and costs nothing per record.
	TracerProvider trace.TracerProvider
}

// DefaultStoreMemory is Config.StoreMemory's default.
const DefaultStoreMemory = 128 << 20

// Validate reports what is missing.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("no state directory"))
	}
	if c.StoreMemory < 0 {
		errs = append(errs, fmt.Errorf("store memory must not be negative, got %d", c.StoreMemory))
	}
	if c.Replication < -1 {
		errs = append(errs, fmt.Errorf("replication must be 0 or -1 (the cluster's default) or at least 1, got %d", c.Replication))
	}
	if err := c.Security.Validate(); err != nil {
		errs = append(errs, err)
	}
	for i, g := range c.Groups {
		if strings.TrimSpace(g) == "" {
			errs = append(errs, fmt.Errorf("group name %d is empty", i+1))
		}
	}
	return errors.Join(errs...)
}

// Runtime is a topology connected to Kafka: topics exist, the storage engine is
// open. Run supervises the processor groups. Its methods are safe for concurrent
// use; Run is called once.
type Runtime struct {
	topo       *Topology
	cfg        Config
	log        *slog.Logger
	client     sarama.Client
	engines    map[string]*tables.Engine // by group: a store belongs to one goka component
	owners     map[string]string         // table topic -> the group that writes it
	running    map[string]bool           // the groups that run here
	replicas   map[string]*tables.Engine // table topic -> the engine of its read replica
	partitions map[string]int
	builders   kafkaconf.Builders
	self       Member
	members    *membership.Tracker[Member]
	tracer     trace.Tracer // nil: tracing off; set in Open
	lags       lagCache     // Lag's last answer, shared by its callers

	mu         sync.Mutex
	processors map[string]*goka.Processor
	views      map[string]*goka.View      // read replicas, by table
	assigned   map[string]goka.Assignment // by group: its partitions in the current generation
	producer   *producer.Sender
	restarts   map[string]int64 // by group: processor restarts after a storage fault
	// runs holds, by group, the processor run in progress (set once in Open,
	// read without rt.mu by the callbacks' fault guard).
	runs map[string]*restart.Slot
}

// Open validates the topology, creates its topics (or checks existing ones:
// co-partitioning is checked against the real partition counts), opens the
// storage engine and returns a runtime ready to Run.
func Open(ctx context.Context, t *Topology, cfg Config) (*Runtime, error) {
	if cfg.Replication == 0 {
		cfg.Replication = -1
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "streamfold"
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	running, err := t.selectGroups(cfg.Groups)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	self := Member{Instance: newInstanceID(), Query: cfg.Advertise}
	base := kafkaconf.Sarama(cfg.ClientID, cfg.SessionTimeout)
	cfg.Security.ApplySarama(base)
	// Every member of our groups says where its queries are served.
	base.Consumer.Group.Member.UserData = encodeMember(self)
	client, err := sarama.NewClient(cfg.Brokers, kafkaconf.Copy(base, cfg.ClientID+"-admin"))
	if err != nil {
		// A broker that refuses credentials often just closes the
		// connection (EOF): say what was tried.
		return nil, fmt.Errorf("connect to kafka %v (%s): %w", cfg.Brokers, cfg.Security, err)
	}
	rt := &Runtime{
		topo: t, cfg: cfg, log: log, client: client, running: running, self: self,
		builders:   kafkaconf.Builders{Base: base, Replication: cfg.Replication, Log: log},
		processors: map[string]*goka.Processor{},
		views:      map[string]*goka.View{},
		assigned:   map[string]goka.Assignment{},
		restarts:   map[string]int64{},
		runs:       map[string]*restart.Slot{},
	}
	rt.partitions, err = topics.Ensure(ctx, client, topicSpecs(t.Topics()), cfg.Replication, log)
	if err != nil {
		client.Close()
		return nil, err
	}
	if err := t.validate(rt.partitions); err != nil {
		client.Close()
		return nil, err
	}
	// Every group gets its own engine (its own directory): a group's lookup
	// tables are goka views of another group's table, held apart from the
	// owner's stores. Indexes are kept wherever a table is held.
	opts := []tables.EngineOption{tables.WithLogger(log), tables.WithWatermarks(tables.SaramaWatermarks(client)), tables.WithRestorer(tables.NewKafkaRestorer(cfg.Brokers, cfg.ClientID+"-restore", cfg.Security.KgoOpts()...))}
	rt.engines, rt.owners = map[string]*tables.Engine{}, map[string]string{}
	if cfg.TracerProvider != nil {
		rt.tracer = cfg.TracerProvider.Tracer(instrumentation)
	}
	for _, g := range t.hooks() {
		g.Bind(rt.partitions)
		g.Trace(cfg.TracerProvider)
		if spec, idx, ok := g.Table(); ok {
			rt.owners[spec.Name] = g.Name()
			for _, i := range idx {
				opts = append(opts, tables.WithIndex(spec.Name, i))
			}
			if g.Sweeps() {
				opts = append(opts, tables.WithIndex(spec.Name, g.ParkingIndex()))
			}
			if g.Timers() {
				opts = append(opts, tables.WithIndex(spec.Name, g.TimeIndex()))
			}
			if topic, parts, ok := g.Parts(); ok {
				opts = append(opts, tables.WithParts(topic, parts))
			}
		}
	}
	if cfg.StoreMemory == 0 {
		cfg.StoreMemory = DefaultStoreMemory
	}
	opts = append(opts, tables.WithMemory(cfg.StoreMemory, rt.storesHeld(cfg.Replicas)))
	for _, g := range t.hooks() {
		rt.runs[g.Name()] = new(restart.Slot)
	}
	for _, g := range t.hooks() {
		// Every group gets an engine, also one that does not run here: it
		// then simply holds no stores. A projection's own engine keeps its
		// applied event ids; its lookups' and replicas' copies do not.
		name := g.Name()
		onFault := tables.WithFaultHandler(func(topic string, partition int32, err error) {
			rt.storeFault(name, topic, partition, err)
		})
		gopts := append(slices.Clip(opts), onFault)
		if topic, seen, ok := g.Seen(); ok {
			gopts = append(gopts, tables.WithSeen(topic, seen))
		}
		e, err := tables.NewEngine(filepath.Join(cfg.StateDir, name), gopts...)
		if err != nil {
			rt.Close()
			return nil, fmt.Errorf("open storage engine of %s: %w", g.Name(), err)
		}
		rt.engines[g.Name()] = e
		g.BindStores(e.Store)
	}
	// A read replica of each table read outside the groups whose group does
	// not run here, each in its own directory: a replica and a group's own
	// stores of one table must never share an engine.
	rt.replicas = map[string]*tables.Engine{}
	if cfg.Replicas {
		for _, name := range t.readTables() {
			if running[rt.owners[name]] {
				continue
			}
			key := replicaRunKey(name)
			rt.runs[key] = new(restart.Slot)
			onFault := tables.WithFaultHandler(func(topic string, partition int32, err error) {
				rt.storeFault(key, topic, partition, err)
			})
			e, err := tables.NewEngine(filepath.Join(cfg.StateDir, replicaDir, name), append(slices.Clip(opts), onFault)...)
			if err != nil {
				rt.Close()
				return nil, fmt.Errorf("open storage engine of the replica of %s: %w", name, err)
			}
			rt.replicas[name] = e
		}
	}
	// Every group is tracked: queries find the owners of the keys of a
	// table not replicated here through its group's membership, and
	// operators see every group's state (GET /membership, the dashboard).
	// One DescribeGroups per coordinator asks for all of them.
	rt.members, err = membership.New(client, t.groupNames(), decodeMember, log)
	if err != nil {
		rt.Close()
		return nil, err
	}
	return rt, nil
}

// storesHeld counts the table partitions this instance may hold at once:
// the tables and lookup tables of the groups that run here (every
// partition: a standby or a rebalance may bring them all) and the read
// replicas.
func (rt *Runtime) storesHeld(replicas bool) int {
	n := 0
	for _, g := range rt.topo.hooks() {
		if !rt.running[g.Name()] {
			continue
		}
		for _, e := range g.Edges() {
			if e.Role == groups.RoleTable || e.Role == groups.RoleLookup || e.Role == groups.RoleJoin {
				n += rt.partitions[e.Spec.Name]
			}
		}
	}
	if replicas {
		for _, name := range rt.topo.readTables() {
			if !rt.running[rt.owners[name]] {
				n += rt.partitions[name]
			}
		}
	}
	return max(n, 1)
}

func topicSpecs(ts []TopicInfo) []tables.Spec {
	specs := make([]tables.Spec, len(ts))
	for i, t := range ts {
		specs[i] = t.Spec
	}
	return specs
}

// replicaDir is the state subdirectory of the read replicas. Group names
// cannot contain '/', so <state>/replicas/<table> never meets a group's
// <state>/<group>.
const replicaDir = "replicas"

// Store returns the open local store of a table partition: held by the group
// that writes the table when it runs here (its own partitions and, with
// Standby, hot copies of the others), else by the table's read replica. It
// makes a Runtime the views' store source.
func (rt *Runtime) Store(topic string, partition int32) (*tables.Store, bool) {
	e, ok := rt.replicas[topic]
	if !ok {
		if e, ok = rt.engines[rt.owners[topic]]; !ok {
			return nil, false
		}
	}
	return e.Store(topic, partition)
}

// HighWatermark is the offset the next record of a topic partition will get;
// views use it to report how far a stale copy lags.
func (rt *Runtime) HighWatermark(topic string, partition int32) (int64, error) {
	return rt.client.GetOffset(topic, partition, sarama.OffsetNewest)
}

// GroupStore returns a store held by a group's own engine: its table, or its
// copy of a lookup table (what the group's handlers see, which may lag the
// owner's table).
func (rt *Runtime) GroupStore(group, topic string, partition int32) (*tables.Store, bool) {
	e, ok := rt.engines[group]
	if !ok {
		return nil, false
	}
	return e.Store(topic, partition)
}

// Brokers are the bootstrap servers the runtime runs against.
func (rt *Runtime) Brokers() []string { return slices.Clone(rt.cfg.Brokers) }

// Security is how the runtime's clients connect to Brokers; other clients of
// the same cluster (dead-letter tools) use it too.
func (rt *Runtime) Security() Security { return rt.cfg.Security }

// PartitionsOf is the real partition count of a topic of the topology.
func (rt *Runtime) PartitionsOf(topic string) int { return rt.partitions[topic] }

// Run starts every processor group and blocks until ctx ends (then it stops
// them cleanly: flush, commit, close stores) or one of them fails.
func (rt *Runtime) Run(ctx context.Context) error {
	// Everything that can fail happens before the first processor starts.
	procs := make(map[string]*goka.Processor, len(rt.running))
	rebuild := make(map[string]func() (*goka.Processor, error), len(rt.running))
	for _, g := range rt.topo.hooks() {
		if !rt.running[g.Name()] {
			continue
		}
		gg, err := g.Graph()
		if err != nil {
			return err
		}
		topics.WarnOutOfRange(rt.client, g.Name(), groups.Inputs(g), rt.partitions, rt.log)
		if g.Bootstrap() {
			record := func(topic, key string, value []byte) error {
				_, err := rt.produce(context.Background(), topic, key, value, nil)
				return err
			}
			if err := bootstrap.Prepare(rt.client, g, rt.partitions, record, rt.log); err != nil {
				return err
			}
		}
		name := g.Name()
		opts := append(rt.builders.ProcessorOptions(goka.WithStorageBuilder(rt.engines[name].Builder())),
			goka.WithClientID(rt.cfg.ClientID+"-"+name), rt.guard(name),
			goka.WithRebalanceCallback(func(a goka.Assignment) { rt.setAssigned(name, a) }))
		if rt.cfg.Standby {
			opts = append(opts, goka.WithHotStandby(), goka.WithRecoverAhead())
		}
		build := func() (*goka.Processor, error) { return goka.NewProcessor(rt.cfg.Brokers, gg, opts...) }
		p, err := build()
		if err != nil {
			return fmt.Errorf("group %s: %w", name, err)
		}
		procs[name], rebuild[name] = p, build
	}
	views := make(map[string]*goka.View, len(rt.replicas))
	rebuildView := make(map[string]func() (*goka.View, error), len(rt.replicas))
	for table, e := range rt.replicas {
		build := func() (*goka.View, error) {
			return goka.NewView(rt.cfg.Brokers, goka.Table(table), new(codec.Bytes),
				append(rt.builders.ViewOptions(e.Builder()), goka.WithViewClientID(rt.cfg.ClientID+"-replica-"+table))...)
		}
		v, err := build()
		if err != nil {
			return fmt.Errorf("replica of %s: %w", table, err)
		}
		views[table], rebuildView[table] = v, build
	}
	rt.mu.Lock()
	rt.processors, rt.views = maps.Clone(procs), maps.Clone(views)
	rt.mu.Unlock()
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		rt.members.Run(ctx, membership.Every)
		return nil
	})
	for table, v := range views {
		eg.Go(func() error { return rt.runReplica(ctx, table, v, rebuildView[table]) })
	}
	eg.Go(func() error {
		return rt.sweepLoop(ctx, func(group string) bool { _, ok := procs[group]; return ok })
	})
	eg.Go(func() error {
		return rt.timerLoop(ctx, func(group string) bool { _, ok := procs[group]; return ok })
	})
	for name, p := range procs {
		eg.Go(func() error { return rt.runGroup(ctx, name, p, rebuild[name]) })
	}
	return eg.Wait()
}

// setAssigned records a group's partitions in a new generation (goka's
// rebalance callback); nil forgets them.
func (rt *Runtime) setAssigned(group string, a goka.Assignment) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if a == nil {
		delete(rt.assigned, group)
		return
	}
	rt.assigned[group] = maps.Clone(a)
}

// Recovered reports whether every processor group that runs here has restored
// its tables and is processing, every read replica has caught up, and no
// store is out of service after a storage fault.
func (rt *Runtime) Recovered() bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.processors) < len(rt.running) || len(rt.views) < len(rt.replicas) {
		return false
	}
	for _, p := range rt.processors {
		if !p.Recovered() {
			return false
		}
	}
	for _, v := range rt.views {
		// The view's state, not View.Recovered: that walks the view's
		// partitions unlocked, racing the close a restarting replica's
		// Run does before it is taken out of rt.views (seen with -race).
		// Running is every partition caught up and following.
		if v.CurrentState() != goka.ViewStateRunning {
			return false
		}
	}
	return rt.storesSound()
}

// Progress is the restore progress of every open store, by table.
func (rt *Runtime) Progress() map[string][]tables.Progress {
	out := map[string][]tables.Progress{}
	for _, g := range rt.topo.hooks() {
		spec, _, ok := g.Table()
		if !ok || !rt.running[g.Name()] {
			continue
		}
		for _, s := range rt.engines[g.Name()].Stores(spec.Name) {
			out[spec.Name] = append(out[spec.Name], s.Progress())
		}
	}
	for table, e := range rt.replicas {
		for _, s := range e.Stores(table) {
			out[table] = append(out[table], s.Progress())
		}
	}
	return out
}

// Stats are the counters of every group, by group name.
func (rt *Runtime) Stats() map[string]processors.Snapshot {
	out := map[string]processors.Snapshot{}
	for _, g := range rt.topo.hooks() {
		snap := processors.Snapshot(g.Stats())
		rt.addStorageStats(g.Name(), &snap)
		out[g.Name()] = snap
	}
	return out
}

// GroupNames lists the groups, sorted.
func (rt *Runtime) GroupNames() []string { return rt.topo.groupNames() }

// Close releases the Kafka clients and the storage engine. Call it after Run returned.
func (rt *Runtime) Close() error {
	var errs []error
	rt.mu.Lock()
	if rt.producer != nil {
		rt.producer.Close()
	}
	rt.mu.Unlock()
	for _, e := range rt.engines {
		errs = append(errs, e.Close())
	}
	for _, e := range rt.replicas {
		errs = append(errs, e.Close())
	}
	errs = append(errs, rt.client.Close())
	return errors.Join(errs...)
}

// Topics lists every topic of the runtime's topology with its writers and
// readers (Topology.Topics), for a description of what runs.
func (rt *Runtime) Topics() []TopicInfo { return rt.topo.Topics() }
