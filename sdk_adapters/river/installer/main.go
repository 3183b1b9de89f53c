// river-migrate applies River's migrations with rivermigrate, the package that the
// `river migrate-up` CLI wraps (the CLI's own module is not served by the Go proxy here).
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

func main() {
	dsn := os.Getenv("DATABASE_URL") // from the environment, so it stays out of argv and logs
	if dsn == "" {
		fmt.Fprintln(os.Stderr, "usage: DATABASE_URL=postgresql://... river-migrate")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	defer pool.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "migrator:", err)
		os.Exit(1)
	}
	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "migrate-up:", err)
		os.Exit(1)
	}
	for _, version := range res.Versions {
		fmt.Printf("applied migration %03d %s\n", version.Version, version.Name)
	}
}
