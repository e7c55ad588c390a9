"""Admin for algorithm templates: nodes with their parameter metadata, and a link to the Launch page (which
the training app serves)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join

from mlabsite.formfields import JSON_FORMFIELD_OVERRIDES

from .models import AlgorithmTemplate, TemplateNode
from .nodes import Group, Param, registry
from .selectors import template_list
from .validation import chain_errors


def _range_text(param: Param) -> str:
    if param.choices:
        return " | ".join(param.choices)
    if param.min is None and param.max is None:
        return ""
    low = "—" if param.min is None else _bound_text(param.min)
    high = "—" if param.max is None else _bound_text(param.max)
    return f"{'(' if param.exclusive_min else '['}{low}, {high}{')' if param.exclusive_max else ']'}"


def _bound_text(bound: float | str) -> str:
    return bound if isinstance(bound, str) else f"{bound:g}"  # a date, or a number


def _flags(node: TemplateNode, param: Param) -> str:
    flags = []
    if param.name in node.locked:
        flags.append("locked")
    if param.required:
        flags.append("required")
    if param.secret:
        flags.append("secret")
    if not param.serialize:
        flags.append("UI only")
    if param.engines != ("local", "pai"):
        flags.append(f"{'/'.join(param.engines)} only")
    return ", ".join(flags)


def parameters_table(node: TemplateNode) -> str:
    """The node's parameters, grouped as in PAI Designer: fields, parameters, tuning."""
    if node.node_type not in registry:
        return "—"
    node_type = node.type
    sections = []
    for group in Group:
        params = [p for p in node_type.params if p.group == group]
        if not params:
            continue
        rows = format_html_join(
            "",
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td>"
            "<td>{}</td><td>{}</td><td class='mlab-help'>{}</td></tr>",
            (
                (
                    p.name,
                    p.label,
                    p.type.value,
                    "" if p.secret else json.dumps(node.effective_value(p.name)),
                    _range_text(p),
                    p.pai_name or "",
                    _flags(node, p),
                    p.help,
                )
                for p in params
            ),
        )
        sections.append(
            format_html(
                "<h4 class='mlab-group'>{}</h4><table class='mlab-params'><thead><tr><th>name</th><th>label</th>"
                "<th>type</th><th>value</th><th>range / choices</th><th>PAI name</th><th>flags</th>"
                "<th>help</th></tr></thead><tbody>{}</tbody></table>",
                group.label,
                rows,
            )
        )
    return format_html("<div class='mlab-node-params'>{}</div>", format_html_join("", "{}", ((s,) for s in sections)))


class TemplateNodeFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        forms_kept = [f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE", False)]
        forms_kept.sort(key=lambda f: f.cleaned_data["position"])
        task = self.instance.task_type
        errors = chain_errors(task, [f.cleaned_data["node_type"] for f in forms_kept])
        if errors:
            raise ValidationError(errors)


class TemplateNodeInline(admin.StackedInline):
    model = TemplateNode
    formset = TemplateNodeFormSet
    formfield_overrides = JSON_FORMFIELD_OVERRIDES
    extra = 0
    fields = ["position", "key", "node_type", "overrides", "locked", "parameters"]
    readonly_fields = ["parameters"]
    ordering = ["position"]

    @admin.display(description="Parameters")
    def parameters(self, node: TemplateNode) -> str:
        return parameters_table(node) if node.pk else "Save to see this node's parameters."


@admin.register(AlgorithmTemplate)
class AlgorithmTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "task_type", "owner", "published", "builtin", "launch_link"]
    list_filter = ["task_type", "published", "builtin"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [TemplateNodeInline]
    readonly_fields = ["builtin", "created_at", "updated_at"]
    change_form_template = "admin/algo_templates/algorithmtemplate/change_form.html"

    class Media:
        css = {"all": ["mlab/admin.css"]}

    def get_queryset(self, request):
        return template_list(user=request.user)

    def has_change_permission(self, request, obj=None):
        if obj is not None and not request.user.is_superuser and (obj.builtin or obj.owner_id != request.user.pk):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.builtin:
            return False
        return self.has_change_permission(request, obj) and super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if not change and obj.owner_id is None and not request.user.is_superuser:
            obj.owner = request.user
        super().save_model(request, obj, form, change)

    @admin.display(description="")
    def launch_link(self, obj: AlgorithmTemplate) -> str:
        url = launch_url(obj)
        return format_html('<a class="button" href="{}">Launch training</a>', url) if url else ""


def launch_url(template: AlgorithmTemplate) -> str | None:
    """The Launch page of a template: the training app's, found by its URL name (None without that app)."""
    try:
        return reverse("admin:training_trainingrun_launch", args=[template.pk])
    except NoReverseMatch:
        return None


@admin.register(TemplateNode)
class TemplateNodeAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_FORMFIELD_OVERRIDES
    list_display = ["template", "position", "key", "node_type"]
    list_filter = ["node_type"]
    readonly_fields = ["parameters"]

    class Media:
        css = {"all": ["mlab/admin.css"]}

    @admin.display(description="Parameters")
    def parameters(self, node: TemplateNode) -> str:
        return parameters_table(node) if node.pk else "—"
