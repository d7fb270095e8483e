package outbox_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamfold/streamfold/outbox"
)

func TestOpen_GivenASQLitePathInAMissingDirectory_ThenTheDirectoryAndFileAreCreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "nested", "shop.db")
	db, err := outbox.Open(context.Background(), "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file: %v", err)
	}
	if db.Dialect != outbox.SQLite {
		t.Errorf("dialect %s, want sqlite", db.Dialect)
	}
}

func TestOpen_GivenAnUnsupportedURL_ThenItSaysSoWithoutThePassword(t *testing.T) {
	_, err := outbox.Open(context.Background(), "mysql://shop:secret@db/shop")
	if !errors.Is(err, outbox.ErrUnsupportedURL) {
		t.Fatalf("err = %v, want ErrUnsupportedURL", err)
	}
	if got := err.Error(); strings.Contains(got, "secret") {
		t.Errorf("error %q shows the password", got)
	}
	if got, want := outbox.Redact("postgres://shop:secret@db:5432/shop?sslmode=disable"), "postgres://shop:xxxxx@db:5432/shop?sslmode=disable"; got != want {
		t.Errorf("Redact = %q, want %q", got, want)
	}
}
