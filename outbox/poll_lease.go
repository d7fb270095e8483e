package outbox

import (
	"context"
	"fmt"
	"time"
)

// createTables creates the dead table and, on SQLite, the lease table.
func (p *pollRun) createTables(ctx context.Context) error {
	ddl := []string{`CREATE TABLE IF NOT EXISTS ` + p.cfg.dead + ` (
	seq bigint NOT NULL,
	id text NOT NULL,
	aggregatetype text NOT NULL,
	aggregateid text NOT NULL,
	type text NOT NULL,
	payload jsonb,
	timestamp timestamptz NOT NULL,
	headers jsonb NOT NULL,
	error text NOT NULL,
	failed_at timestamptz NOT NULL DEFAULT now()
)`}
	if !p.cfg.postgres {
		ddl = []string{`CREATE TABLE IF NOT EXISTS ` + p.cfg.dead + ` (
	seq INTEGER NOT NULL,
	id TEXT NOT NULL,
	aggregatetype TEXT NOT NULL,
	aggregateid TEXT NOT NULL,
	type TEXT NOT NULL,
	payload TEXT,
	timestamp TEXT NOT NULL,
	headers TEXT NOT NULL,
	error TEXT NOT NULL,
	failed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)`, `CREATE TABLE IF NOT EXISTS ` + p.cfg.lease + ` (
	name TEXT PRIMARY KEY,
	holder TEXT NOT NULL,
	expires INTEGER NOT NULL
)`}
	}
	for _, s := range ddl {
		if _, err := p.db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("outbox: create the relay's tables: %w", err)
		}
	}
	return nil
}

// holdLease takes or renews the SQLite lease and says whether this relay
// holds it. It renews when a third of the lease has passed, so a holder
// always has two thirds of it left when it starts publishing a batch.
func (p *pollRun) holdLease(ctx context.Context) (bool, error) {
	now := time.Now()
	lease := p.cfg.leaseFor
	if p.leaseUntil.After(now.Add(lease * 2 / 3)) {
		return true, nil
	}
	// One statement, atomic: take the lease if nobody has it, it has run
	// out, or it is ours.
	res, err := p.db.ExecContext(ctx, `INSERT INTO `+p.cfg.lease+` (name, holder, expires) VALUES ('relay', $1, $2)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
WHERE `+p.cfg.lease+`.holder = excluded.holder OR `+p.cfg.lease+`.expires <= $3`,
		p.cfg.instance, now.Add(lease).UnixMilli(), now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("outbox: take the relay lease: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("outbox: take the relay lease: %w", err)
	}
	if n == 0 {
		if !p.leaseUntil.IsZero() {
			p.cfg.log.Warn("outbox relay lost its lease to another relay; it stops publishing")
			p.leaseLost()
		}
		return false, nil
	}
	if p.leaseUntil.IsZero() {
		p.cfg.log.Info("outbox relay took the lease; it publishes", "lease", lease.String())
		p.relay.mu.Lock()
		p.relay.stats.LeaseHeld, p.relay.stats.LeaseSince = true, now
		p.relay.mu.Unlock()
	}
	p.leaseUntil = now.Add(lease)
	return true, nil
}

func (p *pollRun) leaseLost() {
	p.leaseUntil = time.Time{}
	p.relay.mu.Lock()
	p.relay.stats.LeaseHeld, p.relay.stats.LeaseSince = false, time.Time{}
	p.relay.mu.Unlock()
}
