// Package promtext checks Prometheus' text exposition format (version
// 0.0.4) strictly, so that tests can prove a /metrics page parses for any
// scraper without depending on the Prometheus client libraries.
//
// Check enforces what Prometheus' own parsers rely on: valid metric and
// label names, quoted and escaped label values, numeric values; at most one
// HELP and one TYPE per family, both before the family's first sample; the
// samples of a family together (a family does not reappear after another
// one started); a TYPE for every sample; the suffixes of histograms and
// summaries; histograms with a +Inf bucket; no sample given twice.
package promtext

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

type family struct {
	name, typ  string
	help       bool
	samples    int
	infBuckets map[string]bool // histogram: label sets (without le) with a +Inf bucket
	bucketSets map[string]bool // histogram: label sets (without le) with buckets
}

// Check reads an exposition and returns the first violation, with its line
// number.
func Check(r io.Reader) error {
	fams := map[string]*family{}
	var cur *family // the family whose lines are being read
	closed := map[string]bool{}
	seen := map[string]bool{}
	open := func(name string) (*family, error) {
		if cur != nil && cur.name == name {
			return cur, nil
		}
		if closed[name] {
			return nil, fmt.Errorf("family %s appears again after other families: its lines must be together", name)
		}
		if cur != nil {
			closed[cur.name] = true
		}
		f := &family{name: name, infBuckets: map[string]bool{}, bucketSets: map[string]bool{}}
		fams[name] = f
		cur = f
		return f, nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if err := checkLine(line, open, fams, seen); err != nil {
			return fmt.Errorf("line %d %q: %w", n, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for _, f := range fams {
		if f.typ == "histogram" {
			for set := range f.bucketSets {
				if !f.infBuckets[set] {
					return fmt.Errorf("histogram %s{%s} has no le=\"+Inf\" bucket", f.name, set)
				}
			}
		}
	}
	return nil
}

func checkLine(line string, open func(string) (*family, error), fams map[string]*family, seen map[string]bool) error {
	if strings.TrimSpace(line) == "" {
		return nil
	}
	if strings.HasPrefix(line, "#") {
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[0] != "#" || (fields[1] != "HELP" && fields[1] != "TYPE") {
			return nil // a plain comment
		}
		name := fields[2]
		if !metricName.MatchString(name) {
			return fmt.Errorf("invalid metric name %q", name)
		}
		f, err := open(name)
		if err != nil {
			return err
		}
		if f.samples > 0 {
			return fmt.Errorf("%s of %s after its samples", fields[1], name)
		}
		if fields[1] == "HELP" {
			if f.help {
				return fmt.Errorf("second HELP for %s", name)
			}
			f.help = true
			return nil
		}
		if f.typ != "" {
			return fmt.Errorf("second TYPE for %s", name)
		}
		if len(fields) != 4 || !slices.Contains([]string{"counter", "gauge", "histogram", "summary", "untyped"}, fields[3]) {
			return fmt.Errorf("TYPE must be one of counter, gauge, histogram, summary, untyped")
		}
		f.typ = fields[3]
		return nil
	}
	name, labels, rest, err := splitSample(line)
	if err != nil {
		return err
	}
	fname, suffix := name, ""
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, s); ok && fams[base] != nil && (fams[base].typ == "histogram" || fams[base].typ == "summary") {
			fname, suffix = base, s
		}
	}
	f, err := open(fname)
	if err != nil {
		return err
	}
	if f.typ == "" {
		return fmt.Errorf("sample of %s without a TYPE before it", fname)
	}
	if suffix == "_bucket" && f.typ != "histogram" {
		return fmt.Errorf("%s: _bucket on a %s", fname, f.typ)
	}
	if (f.typ == "histogram") && suffix == "" {
		return fmt.Errorf("histogram %s: sample without _bucket, _sum or _count", fname)
	}
	f.samples++
	key := name + "{" + strings.Join(labels, ",") + "}"
	if seen[key] {
		return fmt.Errorf("sample %s given twice", key)
	}
	seen[key] = true
	if suffix == "_bucket" {
		var le string
		var others []string
		for _, l := range labels {
			if v, ok := strings.CutPrefix(l, `le=`); ok {
				le = v
			} else {
				others = append(others, l)
			}
		}
		if le == "" {
			return fmt.Errorf("histogram bucket without le")
		}
		set := strings.Join(others, ",")
		f.bucketSets[set] = true
		if le == `"+Inf"` {
			f.infBuckets[set] = true
		}
	}
	vals := strings.Fields(rest)
	if len(vals) < 1 || len(vals) > 2 {
		return fmt.Errorf("want a value and an optional timestamp")
	}
	if _, err := parseValue(vals[0]); err != nil {
		return fmt.Errorf("value %q: %w", vals[0], err)
	}
	if len(vals) == 2 {
		if _, err := strconv.ParseInt(vals[1], 10, 64); err != nil {
			return fmt.Errorf("timestamp %q: %w", vals[1], err)
		}
	}
	return nil
}

func parseValue(s string) (float64, error) {
	switch s {
	case "+Inf", "-Inf", "NaN":
		return 0, nil
	}
	return strconv.ParseFloat(s, 64)
}

// splitSample splits `name{l="v",...} rest` into its parts; labels come back
// sorted as name="escaped value".
func splitSample(line string) (name string, labels []string, rest string, err error) {
	i := strings.IndexAny(line, "{ \t")
	if i < 0 {
		return "", nil, "", fmt.Errorf("sample without a value")
	}
	name, rest = line[:i], line[i:]
	if !metricName.MatchString(name) {
		return "", nil, "", fmt.Errorf("invalid metric name %q", name)
	}
	if rest[0] != '{' {
		return name, nil, rest, nil
	}
	rest = rest[1:]
	names := map[string]bool{}
	for {
		rest = strings.TrimLeft(rest, " ")
		if strings.HasPrefix(rest, "}") {
			rest = rest[1:]
			break
		}
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			return "", nil, "", fmt.Errorf("label without '='")
		}
		ln := strings.TrimSpace(rest[:eq])
		if !labelName.MatchString(ln) || strings.HasPrefix(ln, "__") {
			return "", nil, "", fmt.Errorf("invalid label name %q", ln)
		}
		if names[ln] {
			return "", nil, "", fmt.Errorf("label %q given twice", ln)
		}
		names[ln] = true
		rest = strings.TrimLeft(rest[eq+1:], " ")
		if !strings.HasPrefix(rest, `"`) {
			return "", nil, "", fmt.Errorf("label %q: value not quoted", ln)
		}
		j := 1
		for ; j < len(rest); j++ {
			if rest[j] == '\\' {
				if j+1 >= len(rest) || !strings.ContainsRune(`\"n`, rune(rest[j+1])) {
					return "", nil, "", fmt.Errorf("label %q: invalid escape", ln)
				}
				j++
				continue
			}
			if rest[j] == '"' {
				break
			}
		}
		if j >= len(rest) {
			return "", nil, "", fmt.Errorf("label %q: unterminated value", ln)
		}
		labels = append(labels, ln+"="+rest[:j+1])
		rest = strings.TrimLeft(rest[j+1:], " ")
		if strings.HasPrefix(rest, ",") {
			rest = rest[1:]
		} else if !strings.HasPrefix(rest, "}") {
			return "", nil, "", fmt.Errorf("want ',' or '}' after label %q", ln)
		}
	}
	if rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
		return "", nil, "", fmt.Errorf("want a space before the value")
	}
	slices.Sort(labels)
	return name, labels, rest, nil
}
