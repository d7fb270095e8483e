package outbox

import (
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

func TestTailTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		"2026-12-02 06:50:17.123456+00": time.Date(2026, 12, 2, 6, 50, 17, 123456000, time.UTC),
		"2026-12-02 06:50:17+00":        time.Date(2026, 12, 2, 6, 50, 17, 0, time.UTC),
		"2026-12-02 12:20:17.5+05:30":   time.Date(2026, 12, 2, 6, 50, 17, 500000000, time.UTC),
		"1890-01-01 00:00:00+00:09:21":  time.Date(1889, 12, 31, 23, 50, 39, 0, time.UTC),
	} {
		got, err := tailTime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("tailTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"infinity", "-infinity", "2026-12-02 06:50:17.1 BC", ""} {
		if _, err := tailTime(in); err == nil {
			t.Errorf("tailTime(%q): no error", in)
		}
	}
}

func TestTailPending_GivenAnAcknowledgedPrefix_ThenOnlyTransactionsWhollyInItAreConfirmed(t *testing.T) {
	// three transactions: rows 0-1 end at 10, rows 2-4 end at 20, no rows end at 30, row 5 ends at 40
	fresh := func() tailPending {
		return tailPending{rows: make([]tailRow, 6), commits: []tailCommit{{2, 10}, {5, 20}, {5, 30}, {6, 40}}}
	}
	for _, c := range []struct {
		acked int
		want  pglogrepl.LSN
		ok    bool
		rows  int
		ends  []int
	}{
		{0, 0, false, 6, []int{2, 5, 5, 6}},
		{1, 0, false, 5, []int{1, 4, 4, 5}},
		{2, 10, true, 4, []int{3, 3, 4}},
		{4, 10, true, 2, []int{1, 1, 2}},
		{5, 30, true, 1, []int{1}},
		{6, 40, true, 0, []int{}},
	} {
		p := fresh()
		lsn, ok := p.ack(c.acked)
		if lsn != c.want || ok != c.ok || len(p.rows) != c.rows || len(p.commits) != len(c.ends) {
			t.Errorf("ack(%d) = %v, %v, %d rows, %v; want %v, %v, %d rows, ends %v", c.acked, lsn, ok, len(p.rows), p.commits, c.want, c.ok, c.rows, c.ends)
			continue
		}
		for i, e := range c.ends {
			if p.commits[i].end != e {
				t.Errorf("ack(%d): commit %d ends at row %d, want %d", c.acked, i, p.commits[i].end, e)
			}
		}
	}
}
