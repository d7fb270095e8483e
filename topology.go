package streamfold

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/streamfold/streamfold/internal/groups"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/tables"
)

// ErrInvalidTopology is returned by Validate (and Open) for a topology that cannot run.
var ErrInvalidTopology = errors.New("invalid topology")

// Topology declares an application's topics and processor groups. Build it
// completely before Open; it is not safe for concurrent mutation.
type Topology struct {
	partitions int
	groups     []*processors.Group
	external   []externalTopic
}

type externalTopic struct {
	topic  tables.Topic
	writer string
	reader string
}

// TopologyOption configures a Topology.
type TopologyOption func(*Topology)

// WithPartitions sets the partition count of topics the topology creates (default 8).
func WithPartitions(n int) TopologyOption { return func(t *Topology) { t.partitions = n } }

// NewTopology returns an empty topology.
func NewTopology(opts ...TopologyOption) *Topology {
	t := &Topology{partitions: 8}
	for _, o := range opts {
		o(t)
	}
	return t
}

// AddGroup adds processor groups, each with the groups it needs (an
// aggregate's relay), so none can be forgotten. A group added twice is
// added once.
func (t *Topology) AddGroup(gs ...*processors.Group) *Topology {
	for _, g := range gs {
		if slices.Contains(t.groups, g) {
			continue
		}
		t.groups = append(t.groups, g)
		for _, n := range groups.Of(g).Needs() {
			t.AddGroup(n.(*processors.Group))
		}
	}
	return t
}

// Groups returns the topology's groups in the order they were added.
func (t *Topology) Groups() []*processors.Group { return slices.Clone(t.groups) }

// groupNames are the groups' names, sorted.
func (t *Topology) groupNames() []string {
	names := make([]string, 0, len(t.groups))
	for _, g := range t.hooks() {
		names = append(names, g.Name())
	}
	slices.Sort(names)
	return names
}

// hooks are what the runtime calls on the groups, in the order they were added.
func (t *Topology) hooks() []groups.Hooks {
	hs := make([]groups.Hooks, len(t.groups))
	for i, g := range t.groups {
		hs[i] = groups.Of(g)
	}
	return hs
}

// WrittenBy declares that something outside the topology's groups writes topic
// (an HTTP endpoint, any Kafka producer), so the topic is created and described.
func (t *Topology) WrittenBy(topic tables.Topic, writer string) *Topology {
	t.external = append(t.external, externalTopic{topic: topic, writer: writer})
	return t
}

// ReadBy declares that something outside the groups reads topic (views, queries).
func (t *Topology) ReadBy(topic tables.Topic, reader string) *Topology {
	t.external = append(t.external, externalTopic{topic: topic, reader: reader})
	return t
}

// TopicInfo is one topic of the topology with who writes and reads it.
type TopicInfo struct {
	tables.Spec
	Writers []string `json:"writers"`
	Readers []string `json:"readers"`
}

// Topics lists every topic the topology touches, sorted by name. Partitions are
// the declared counts, the default filled in.
func (t *Topology) Topics() []TopicInfo {
	byName := map[string]*TopicInfo{}
	get := func(s tables.Spec) *TopicInfo {
		ti, ok := byName[s.Name]
		if !ok {
			if s.Partitions == 0 {
				s.Partitions = t.partitions
			}
			ti = &TopicInfo{Spec: s}
			byName[s.Name] = ti
		}
		return ti
	}
	addUniq := func(list *[]string, v string) {
		if v != "" && !slices.Contains(*list, v) {
			*list = append(*list, v)
		}
	}
	for _, e := range t.external {
		ti := get(e.topic.Spec())
		addUniq(&ti.Writers, e.writer)
		addUniq(&ti.Readers, e.reader)
	}
	for _, g := range t.hooks() {
		for _, e := range g.Edges() {
			ti := get(e.Spec)
			switch e.Role {
			case groups.RoleInput, groups.RoleLookup, groups.RoleJoin:
				addUniq(&ti.Readers, g.Name())
			case groups.RoleTable, groups.RoleOutput, groups.RoleDLQ:
				addUniq(&ti.Writers, g.Name())
			case groups.RoleLoop, groups.RoleRetry, groups.RoleSeen, groups.RoleParts:
				addUniq(&ti.Writers, g.Name())
				addUniq(&ti.Readers, g.Name())
			}
		}
	}
	out := make([]TopicInfo, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		out = append(out, *byName[name])
	}
	return out
}

var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// Validate checks names, duplicate groups, conflicting declarations of one topic
// and, against the declared partition counts, co-partitioning: a group's inputs
// and table (and the tables it joins partition by partition) must have the
// same number of partitions.
func (t *Topology) Validate() error {
	return t.validate(nil)
}

// validate checks the topology; actual, when given, holds the real partition
// counts of existing topics and overrides the declared ones.
func (t *Topology) validate(actual map[string]int) error {
	var errs []error
	if t.partitions <= 0 {
		errs = append(errs, fmt.Errorf("partitions must be positive, got %d", t.partitions))
	}
	seenGroups := map[string]bool{}
	for _, g := range t.hooks() {
		if seenGroups[g.Name()] {
			errs = append(errs, fmt.Errorf("group %s declared twice", g.Name()))
		}
		seenGroups[g.Name()] = true
		if err := g.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	specs := map[string]tables.Spec{}
	check := func(s tables.Spec) {
		if !topicName.MatchString(s.Name) {
			errs = append(errs, fmt.Errorf("topic name %q is not a legal Kafka topic name", s.Name))
		}
		if prev, ok := specs[s.Name]; ok && (prev.Kind != s.Kind || prev.ValueType != s.ValueType) {
			errs = append(errs, fmt.Errorf("topic %s declared as %s of %s and as %s of %s", s.Name, prev.Kind, prev.ValueType, s.Kind, s.ValueType))
		}
		specs[s.Name] = s
	}
	for _, e := range t.external {
		check(e.topic.Spec())
	}
	partitionsOf := func(s tables.Spec) int {
		if n, ok := actual[s.Name]; ok {
			return n
		}
		if s.Partitions > 0 {
			return s.Partitions
		}
		return t.partitions
	}
	for _, g := range t.hooks() {
		var copart []string
		counts := map[int]bool{}
		for _, e := range g.Edges() {
			check(e.Spec)
			switch e.Role {
			case groups.RoleInput, groups.RoleTable, groups.RoleLoop, groups.RoleRetry, groups.RoleSeen, groups.RoleParts, groups.RoleJoin:
				n := partitionsOf(e.Spec)
				counts[n] = true
				copart = append(copart, fmt.Sprintf("%s=%d", e.Spec.Name, n))
			}
		}
		if len(counts) > 1 {
			errs = append(errs, fmt.Errorf("group %s is not co-partitioned: %s", g.Name(), strings.Join(copart, ", ")))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidTopology, errors.Join(errs...))
}

// Format is a description format.
type Format string

const (
	FormatText    Format = "text"
	FormatMermaid Format = "mermaid"
	FormatJSON    Format = "json"
)

// Describe writes the topology: every topic with partitions, configs, value
// type, writers and readers.
func (t *Topology) Describe(w io.Writer, f Format) error {
	topics := t.Topics()
	switch f {
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		names := make([]string, 0, len(t.groups))
		for _, g := range t.groups {
			names = append(names, g.Name())
		}
		return enc.Encode(struct {
			Groups []string    `json:"groups"`
			Topics []TopicInfo `json:"topics"`
		}{names, topics})
	case FormatMermaid:
		return t.describeMermaid(w, topics)
	case FormatText, "":
		return describeText(w, topics)
	default:
		return fmt.Errorf("unknown format %q (text, mermaid, json)", f)
	}
}

func describeText(w io.Writer, topics []TopicInfo) error {
	var b strings.Builder
	for _, ti := range topics {
		fmt.Fprintf(&b, "%s (%s, %d partitions)\n", ti.Name, ti.Kind, ti.Partitions)
		fmt.Fprintf(&b, "  key:     string (aggregate id, murmur2-partitioned)\n")
		fmt.Fprintf(&b, "  value:   %s\n", ti.ValueType)
		if len(ti.Indexes) > 0 {
			fmt.Fprintf(&b, "  indexes: %s\n", strings.Join(ti.Indexes, ", "))
		}
		keys := slices.Sorted(maps.Keys(ti.Configs))
		cfg := make([]string, 0, len(keys))
		for _, k := range keys {
			cfg = append(cfg, k+"="+ti.Configs[k])
		}
		fmt.Fprintf(&b, "  configs: %s\n", strings.Join(cfg, " "))
		fmt.Fprintf(&b, "  writers: %s\n", orNone(ti.Writers))
		fmt.Fprintf(&b, "  readers: %s\n", orNone(ti.Readers))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}

func (t *Topology) describeMermaid(w io.Writer, topics []TopicInfo) error {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	id := func(s string) string {
		return strings.NewReplacer("-", "_", ".", "_", " ", "_", "/", "_", "{", "", "}", "").Replace(s)
	}
	nodes := map[string]bool{}
	for _, ti := range topics {
		shape := fmt.Sprintf("  t_%s[[\"%s<br/>%s, %d partitions\"]]\n", id(ti.Name), ti.Name, ti.Kind, ti.Partitions)
		if ti.Kind == tables.KindTable {
			shape = fmt.Sprintf("  t_%s[(\"%s<br/>table, %d partitions\")]\n", id(ti.Name), ti.Name, ti.Partitions)
		}
		b.WriteString(shape)
		for _, n := range append(slices.Clone(ti.Writers), ti.Readers...) {
			if !nodes[n] {
				nodes[n] = true
				fmt.Fprintf(&b, "  p_%s(\"%s\")\n", id(n), n)
			}
		}
	}
	lines := []string{}
	for _, ti := range topics {
		for _, wr := range ti.Writers {
			lines = append(lines, fmt.Sprintf("  p_%s --> t_%s\n", id(wr), id(ti.Name)))
		}
		for _, rd := range ti.Readers {
			lines = append(lines, fmt.Sprintf("  t_%s --> p_%s\n", id(ti.Name), id(rd)))
		}
	}
	sort.Strings(lines)
	for _, l := range lines {
		b.WriteString(l)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
