"""Admin for algorithm templates: nodes with their parameter metadata, and a link to the Launch page (which
the training app serves)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join

from mlabsite.formfields import JSON_FORMFIELD_OVERRIDES

from .chain import allowed_text, chain_svg, template_nodes
from .models import AlgorithmTemplate, TemplateNode
from .nodes import Group, Param, registry
from .selectors import template_changeable_list, template_list, template_may_change
from .services import template_node_delete, template_node_save
from .validation import chain_errors, template_chain_errors


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
                    allowed_text(p),
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
    """Editing the chain, for those who may change the template (its owner, a superuser). Everyone else sees
    the chain as a picture with each node's parameters in words (``chain.py``)."""

    model = TemplateNode
    formset = TemplateNodeFormSet
    formfield_overrides = JSON_FORMFIELD_OVERRIDES
    extra = 0
    fields = ["position", "key", "node_type", "overrides", "locked"]
    ordering = ["position"]
    verbose_name_plural = "Edit the nodes (presets and locks as JSON)"


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

    def get_inlines(self, request, obj=None):
        # Those who may not change the template read its nodes in the chain picture's panels, not as JSON.
        if obj is not None and not template_may_change(request.user, obj):
            return []
        return super().get_inlines(request, obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        template = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if template is not None:
            nodes = template_nodes(template)
            context.update(chain_nodes=nodes, chain_svg=chain_svg(nodes))
        return super().change_view(request, object_id, form_url, extra_context=context)

    def has_change_permission(self, request, obj=None):
        if obj is not None and not template_may_change(request.user, obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.builtin:
            return False
        return self.has_change_permission(request, obj) and super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            del actions["delete_selected"]
            actions["delete_own_selected"] = self.get_action("delete_own_selected")
        return actions

    @admin.action(description="Delete selected templates (yours only)", permissions=["delete"])
    def delete_own_selected(self, request, queryset):
        """Django's bulk delete checks the model permission only; this one refuses the whole batch when it holds
        a template the user may not delete (built in, or someone else's)."""
        others = [t.name for t in queryset if t.builtin or not template_may_change(request.user, t)]
        if others:
            self.message_user(
                request, f"Not deleted: you may delete only templates you own ({', '.join(others)}).", messages.ERROR
            )
            return None
        return delete_selected(self, request, queryset)

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


class TemplateNodeForm(forms.ModelForm):
    """One node on its own: the template's chain, with this node added or changed, must stay runnable."""

    class Meta:
        model = TemplateNode
        fields = ["template", "position", "key", "node_type", "overrides", "locked"]

    def clean(self):
        cleaned = super().clean() or {}
        template = cleaned.get("template")
        if template is not None and not self.errors:
            node = self.instance
            node.template, node.position, node.node_type = template, cleaned["position"], cleaned["node_type"]
            errors = template_chain_errors(template, changed=node)
            if errors:
                raise ValidationError(errors)
        return cleaned


@admin.register(TemplateNode)
class TemplateNodeAdmin(admin.ModelAdmin):
    """Nodes one by one. Only a template's owner (or a superuser; built-in templates: superusers only) changes
    its nodes, and every change goes through the services that keep the chain runnable."""

    form = TemplateNodeForm
    formfield_overrides = JSON_FORMFIELD_OVERRIDES
    list_display = ["template", "position", "key", "node_type"]
    list_filter = ["node_type"]
    readonly_fields = ["parameters"]
    actions = None  # no bulk delete: each deletion is checked against the chain it leaves

    class Media:
        css = {"all": ["mlab/admin.css"]}

    def get_queryset(self, request):
        visible = template_list(user=request.user).values("pk")
        return super().get_queryset(request).filter(template__in=visible).select_related("template")

    # Nodes one by one are for superusers: a business developer edits the nodes of their own templates on the
    # template's page, and reads every other template's nodes there. These views are neither listed for them
    # nor reachable (403). The permission rules below still decide what may change, e.g. whether deleting a
    # template may delete its nodes.
    def has_module_permission(self, request):
        return request.user.is_superuser

    def _node_views_allowed(self, request) -> None:
        if not request.user.is_superuser:
            raise PermissionDenied("Nodes are edited on their template's page.")

    def changelist_view(self, request, extra_context=None):
        self._node_views_allowed(request)
        return super().changelist_view(request, extra_context)

    def add_view(self, request, form_url="", extra_context=None):
        self._node_views_allowed(request)
        return super().add_view(request, form_url, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self._node_views_allowed(request)
        return super().change_view(request, object_id, form_url, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        self._node_views_allowed(request)
        return super().history_view(request, object_id, extra_context)

    def has_change_permission(self, request, obj=None):
        if obj is not None and not template_may_change(request.user, obj.template):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and not template_may_change(request.user, obj.template):
            return False
        return super().has_delete_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "template":
            kwargs["queryset"] = template_changeable_list(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        template_node_save(node=obj)

    def delete_view(self, request, object_id, extra_context=None):
        self._node_views_allowed(request)
        node = self.get_object(request, object_id)
        if node is not None and self.has_delete_permission(request, node):
            errors = template_chain_errors(node.template, removed=node)
            if errors:
                self.message_user(request, f"{node} was not deleted: {' '.join(errors)}", messages.ERROR)
                return HttpResponseRedirect(reverse("admin:algo_templates_templatenode_change", args=[node.pk]))
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request, obj):
        template_node_delete(node=obj)

    @admin.display(description="Parameters")
    def parameters(self, node: TemplateNode) -> str:
        return parameters_table(node) if node.pk else "—"
