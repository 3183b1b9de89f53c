package protocol

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolerQueryExecMode is the pgx query exec mode a driver's pools use behind PgBouncer
// (cfg.Pooler set): pgx's default caches named prepared statements, which PgBouncer before
// 1.21 cannot keep in transaction mode; pgx's doc names Exec (preferred), CacheDescribe and
// SimpleProtocol as compatible (pgx/v5@v5.12.0/doc.go:220-233). A driver whose SDK needs
// another of those sets it before opening a pool, and declares it in its manifest's tuning.
var PoolerQueryExecMode = pgx.QueryExecModeExec

// Pool is a pgx pool of at most size connections on the harness's DSN.
func Pool(ctx context.Context, cfg Config, size int) (*pgxpool.Pool, error) {
	config, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, err
	}
	config.MaxConns = int32(size)
	if cfg.Pooler != "" {
		config.ConnConfig.DefaultQueryExecMode = PoolerQueryExecMode
	}
	return pgxpool.NewWithConfig(ctx, config)
}
