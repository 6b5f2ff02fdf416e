// Package deps pins module dependencies that code in later commits imports; it is removed once they are used.
package deps

import (
	_ "github.com/google/uuid"
	_ "github.com/gophercloud/gophercloud/v2"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/knadh/koanf/v2"
	_ "github.com/pressly/goose/v3"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/spf13/cobra"
	_ "modernc.org/sqlite"
)
