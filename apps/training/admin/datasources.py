"""Data source pages: connection settings (never a password), the introspected schema, a refresh action."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.templates.metrics import human_number
from mlabsite.formfields import JSON_FORMFIELD_OVERRIDES

from ..datasources import DataSourceError, column_kind
from ..models import DataSource
from ..selectors import datasource_profile, datasource_schema
from ..services import datasource_schema_refresh


def _profile_text(entry: dict | None) -> str:
    if not entry:
        return ""
    if entry.get("error"):
        return format_html("<span class='mlab-help'>{}</span>", entry["error"])
    rows = format_html("<span class='mlab-badge mlab-table-rows'>{} rows</span>", human_number(entry.get("rows")))
    if not entry.get("partition_column"):
        return rows
    return format_html(
        "{}<span class='mlab-badge mlab-table-days'>{} from {} to {}</span>",
        rows,
        entry["partition_column"],
        entry.get("first_day") or "—",
        entry.get("last_day") or "—",
    )


def schema_html(schema, profile: dict | None = None) -> str:
    """Tables with their row count and date range, then their columns, types and kinds, as the Launch pickers
    will offer them."""
    profile = profile or {}
    tables = format_html_join(
        "",
        "<h4 class='mlab-group'>{} <span class='mlab-badge'>{} columns</span>{}</h4>"
        "<table class='mlab-params mlab-schema' data-table='{}'><thead><tr><th>column</th><th>type</th>"
        "<th>kind</th></tr></thead><tbody>{}</tbody></table>",
        (
            (
                table,
                len(columns),
                _profile_text(profile.get(table)),
                table,
                format_html_join(
                    "",
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                    (
                        (
                            c,
                            t,
                            column_kind(t)
                            + (", few values" if c in (profile.get(table) or {}).get("few_values", []) else ""),
                        )
                        for c, t in columns.items()
                    ),
                ),
            )
            for table, columns in schema.items()
        ),
    )
    return format_html("<div class='mlab-schema-tables'>{}</div>", tables)


@admin.register(DataSource)
class DataSourceAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_FORMFIELD_OVERRIDES
    list_display = ["name", "kind", "description"]
    list_filter = ["kind"]
    search_fields = ["name", "description"]
    fields = ["name", "kind", "description", "options", "password_env", "owner", "schema"]
    readonly_fields = ["schema"]
    actions = ["refresh_schema"]
    change_form_template = "admin/training/datasource/change_form.html"
    help_texts = {
        "options": "Connection settings only, never a secret. DuckDB: path (a file under MLAB_DUCKDB_ROOTS), "
        "schema, threads. MySQL: host (one MLAB_DATASOURCE_HOSTS allows), port, user, database, connect_timeout, "
        "ssl_mode (disabled, preferred, required, verify_ca, verify_identity), ssl_ca, ssl_cert, ssl_key (files "
        'under MLAB_DATASOURCE_TLS_PATHS). MaxCompute/Hive: project, tables {"table": {"column": "type"}} '
        "(Hive: database too).",
        "password_env": "The environment variable holding the password, if any: its name starts with MLAB_DS_.",
    }

    class Media:
        css = {"all": ["mlab/admin.css"]}

    @admin.display(description="Tables (introspected)")
    def schema(self, datasource: DataSource) -> str:
        if not datasource.pk:
            return "Save to see the tables."
        try:
            schema = datasource_schema(datasource=datasource)
            return schema_html(schema, datasource_profile(datasource=datasource))
        except DataSourceError as exc:
            return format_html("<p class='errornote'>{}</p>", str(exc))

    def get_form(self, request, obj=None, change=False, **kwargs):
        return super().get_form(request, obj, change, **{"help_texts": self.help_texts, **kwargs})

    @admin.action(description="Refresh the schema of the selected data sources", permissions=["change"])
    def refresh_schema(self, request, queryset):
        for datasource in queryset:
            self._refresh(request, datasource)

    def _refresh(self, request, datasource: DataSource) -> None:
        try:
            schema = datasource_schema_refresh(datasource=datasource, user=request.user)
        except DataSourceError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"Introspected {len(schema)} tables of {datasource.name}.", messages.SUCCESS)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/refresh-schema/",
                self.admin_site.admin_view(self.refresh_view),
                name="training_datasource_refresh",
            ),
            *super().get_urls(),
        ]

    def refresh_view(self, request, object_id: str):
        if request.method != "POST":
            raise PermissionDenied
        datasource = self.get_object(request, object_id)
        if datasource is None:
            raise Http404("No such data source.")
        if not self.has_change_permission(request, datasource):
            raise PermissionDenied  # refreshing connects to the source now: viewing its cached tables does not
        self._refresh(request, datasource)
        return HttpResponseRedirect(reverse("admin:training_datasource_change", args=[datasource.pk]))
