package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/streamfold/streamfold/deadletters"
	"github.com/streamfold/streamfold/internal/kafkaconf"
	"github.com/streamfold/streamfold/serve"
)

const dlqUsage = `usage: %[1]s dlq <command> --group <group> [flags]

commands:
  list      list dead letters in (partition, offset) order, with what became
            of their last re-drive (redriven, applied, stale, failed-again)
            [--limit N] [--cursor C] [--format text|json]
  show      print one dead letter, its value and headers
            --partition P --offset O [--format text|json]
  redrive   produce dead letters back to their original topic; they stay in the DLQ
            --partition P --offset O | --partition P --from A --to B | --all
            [--force] [--format text|json]
            Skips dead letters applied already, and, unless --force, stale ones
            (their key was written since) and ones whose re-drive has no outcome
            yet. The group refuses a stale record unless forced, and never lets
            a tombstone or a deletion erase a newer write.

Every command takes --brokers (%[2]s; default: the embedded broker of a
running %[1]s, at --kafka-listen, %[3]s, or 127.0.0.1:9092) and --timeout. Run '%[1]s dlq <command> -h' for its flags.
`

// dlqCommand is '<name> dlq list|show|redrive'.
func dlqCommand(ctx context.Context, app App, args []string, stdout, stderr io.Writer) error {
	env := app.env()
	usage := fmt.Sprintf(dlqUsage, app.Name, env.Name("brokers"), env.Name("kafka-listen"))
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ErrUsage
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return flag.ErrHelp
	case "list", "show", "redrive":
	default:
		fmt.Fprintf(stderr, "%s dlq: unknown command %q\n\n%s", app.Name, sub, usage)
		return ErrUsage
	}

	fs := flag.NewFlagSet(app.Name+" dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	// Without --brokers, the embedded broker of a running service: where
	// its --kafka-listen (or the variable) put it, as the run command does.
	brokers := fs.String("brokers", env.String("brokers", ""), fmt.Sprintf("comma-separated Kafka bootstrap servers (%s); default: the embedded broker at --kafka-listen", env.Name("brokers")))
	listen := fs.String("kafka-listen", env.String("kafka-listen", "127.0.0.1:9092"), fmt.Sprintf("the embedded broker's address, used without --brokers (%s)", env.Name("kafka-listen")))
	group := fs.String("group", "", "the processor group whose <group>-dlq to read (required)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	format := fs.String("format", "text", "output: text or json")
	var kafka KafkaSecurity
	secrets := secrets{}
	bindKafkaFlags(fs, env, &kafka, secrets.flag(fs, env))
	var (
		limit            = 50
		cursor           string
		partition        int
		offset, from, to int64
		all, force       bool
		partitionFlag    = func() { fs.IntVar(&partition, "partition", 0, "partition of the dead-letter topic") }
	)
	switch sub {
	case "list":
		fs.IntVar(&limit, "limit", limit, "dead letters per page")
		fs.StringVar(&cursor, "cursor", "", "where to continue: the cursor the previous page printed")
	case "show":
		partitionFlag()
		fs.Int64Var(&offset, "offset", 0, "offset of the dead letter")
	case "redrive":
		partitionFlag()
		fs.Int64Var(&offset, "offset", 0, "offset of the one dead letter to re-drive")
		fs.Int64Var(&from, "from", 0, "first offset of a range to re-drive")
		fs.Int64Var(&to, "to", 0, "last offset (included) of a range to re-drive")
		fs.BoolVar(&all, "all", false, "re-drive every dead letter of the group")
		fs.BoolVar(&force, "force", false, "re-drive stale dead letters over newer writes of their key, and ones awaiting an outcome")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return ErrUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	usageErr := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "%s dlq %s: %s\n", app.Name, sub, fmt.Sprintf(format, a...))
		return ErrUsage
	}
	switch {
	case fs.NArg() > 0:
		return usageErr("unexpected arguments %q", fs.Args())
	case *group == "":
		return usageErr("--group is required")
	case *format != "text" && *format != "json":
		return usageErr("--format must be text or json, got %q", *format)
	case limit < 1:
		return usageErr("--limit must be at least 1, got %d", limit)
	case sub == "show" && (!set["partition"] || !set["offset"]):
		return usageErr("--partition and --offset are required")
	}
	if int(int32(partition)) != partition {
		return usageErr("--partition %d is out of range", partition)
	}
	var sel deadletters.Selection
	if sub == "redrive" {
		var q serve.RedriveRequest
		if set["partition"] {
			p := int32(partition)
			q.Partition = &p
		}
		if set["offset"] {
			q.Offset = &offset
		}
		if set["from"] {
			q.From = &from
		}
		if set["to"] {
			q.To = &to
		}
		if set["all"] {
			q.All = &all
		}
		q.Force = force
		var err error
		if sel, err = q.Selection(); err != nil {
			return usageErr("%v; give --partition and --offset (one), --partition, --from and --to (a range, both included), or --all", err)
		}
	}

	if strings.TrimSpace(*brokers) == "" {
		*brokers = *listen
	}
	var list []string
	for b := range strings.SplitSeq(*brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			list = append(list, b)
		}
	}
	if len(list) == 0 {
		return usageErr("--brokers is empty")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	secrets.read()
	kafka.finish()
	sec, err := kafka.Security()
	if err != nil {
		return usageErr("%v", err)
	}
	if err := sec.Validate(); err != nil {
		return usageErr("%v", err)
	}
	c, err := deadletters.New(list, deadletters.WithKafkaVersion(kafkaconf.Version()), deadletters.WithClientID(app.Name+"-dlq"),
		deadletters.WithSarama(sec.ApplySarama))
	if err != nil {
		return err
	}
	defer c.Close()

	switch sub {
	case "list":
		page, err := c.List(ctx, *group, cursor, limit)
		if err != nil {
			return err
		}
		if *format == "json" {
			return writeJSON(stdout, page)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		for _, d := range page.Items {
			msg, _, _ := strings.Cut(d.Message, "\n")
			attempts, status := d.Attempts, "-"
			if d.Redrive != nil {
				attempts, status = max(attempts, d.Redrive.Attempts), d.Redrive.Status
			}
			fmt.Fprintf(tw, "%d/%d\t%s\tkey=%q\tclass=%s\tattempts=%d\tredrive=%s\t%s\n", d.Partition, d.Offset, d.Original(), d.Key, d.Class, attempts, status, msg)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if page.Next != "" {
			again := fmt.Sprintf("%s dlq list --group %s --limit %d --cursor %s", app.Name, *group, limit, page.Next)
			if set["brokers"] {
				again += " --brokers " + *brokers
			} else if set["kafka-listen"] {
				again += " --kafka-listen " + *listen
			}
			fmt.Fprintf(stderr, "more: %s\n", again)
		}
		return nil
	case "show":
		d, err := c.Get(ctx, *group, int32(partition), offset)
		if err != nil {
			return err
		}
		if *format == "json" {
			return writeJSON(stdout, d)
		}
		return writeDeadLetter(stdout, d)
	default: // redrive
		res, err := c.Redrive(ctx, *group, sel)
		if res.Count > 0 || len(res.Skipped) > 0 {
			if *format == "json" {
				if werr := writeJSON(stdout, res); werr != nil {
					return errors.Join(err, werr)
				}
			} else {
				writeResult(stdout, app.Name, deadletters.Topic(*group), res)
			}
		}
		return err
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeDeadLetter prints everything about one dead letter for a human.
func writeDeadLetter(w io.Writer, d deadletters.DeadLetter) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Format(time.RFC3339Nano)
	}
	row("dead letter", d.Coordinates())
	row("dead-lettered", ts(d.DeadLetteredAt))
	row("group", d.Group)
	row("original", d.Original())
	row("original time", ts(d.OriginalTimestamp))
	row("key", fmt.Sprintf("%q", d.Key))
	row("class", d.Class)
	row("attempts", fmt.Sprint(d.Attempts))
	row("first failure", ts(d.FirstFailure))
	msg, rest, multi := strings.Cut(d.Message, "\n")
	row("message", msg)
	if rd := d.Redrive; rd != nil {
		forced := ""
		if rd.Forced {
			forced = " (forced)"
		}
		row("re-drive", fmt.Sprintf("%s%s at %s, attempt %d", rd.Status, forced, ts(rd.At), rd.Attempts))
		if rd.To != "" {
			row("re-driven to", rd.To)
		}
		if rd.Reason != "" {
			reason, _, _ := strings.Cut(rd.Reason, "\n")
			row("re-drive reason", reason)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if multi {
		fmt.Fprintf(w, "%s\n", rest)
	}
	fmt.Fprintln(w, "headers:")
	for _, k := range slices.Sorted(maps.Keys(d.Headers)) {
		fmt.Fprintf(w, "  %s: %s\n", k, d.Headers[k])
	}
	switch {
	case d.Value == nil:
		fmt.Fprintln(w, "value: null (tombstone)")
	case utf8.Valid(d.Value):
		fmt.Fprintf(w, "value (%d bytes):\n%s\n", len(d.Value), d.Value)
	default:
		fmt.Fprintf(w, "value (%d bytes, base64):\n%s\n", len(d.Value), base64.StdEncoding.EncodeToString(d.Value))
	}
	return nil
}

func writeResult(w io.Writer, name, dlqTopic string, res deadletters.Result) {
	fmt.Fprintf(w, "re-drove %d dead letter(s) of %s\n", res.Count, dlqTopic)
	for _, r := range res.Redriven {
		fmt.Fprintf(w, "%s -> %s  key=%q  attempts=%d\n", r.From, r.To, r.Key, r.Attempts)
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(w, "skipped %s: %s\n", s.From, s.Reason)
	}
	if res.Count > 0 {
		fmt.Fprintf(w, "the group records each outcome: see '%s dlq list'\n", name)
	}
}
