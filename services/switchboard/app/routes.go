package app

import "github.com/labstack/echo/v5"

// Routes lists every route the process's HTTP server serves — /healthz,
// /readyz, /openapi.json and each started role's — so a test can hold the
// OpenAPI document against what is really mounted.
func (a *App) Routes() echo.Routes {
	return append(echo.Routes(nil), a.echo.Router().Routes()...)
}
