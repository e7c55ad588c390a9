"""Admin of the deploy app. The scene page is where a business developer works: versions side by side, the
split editor with gray-release overrides, the published revision and the config a client receives, the
revision history with diffs and one-click rollback. Every change goes through the same services as the API.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse

from apps.templates.metrics import human_number, key_metric, metric_guide, metric_rows
from apps.training.humanize import human_size
from apps.training.selectors import training_run_list
from mlabsite.formfields import JSON_FORMFIELD_OVERRIDES

from . import selectors, services
from .admin_results import scene_results_context
from .forms import RegisterRunForm, SplitEditorForm
from .models import ClientToken, ConfigEntry, Deployment, ModelVersion, Scene


def _admin_url(name: str, *args) -> str | None:
    try:
        return reverse(f"admin:{name}", args=args)
    except NoReverseMatch:
        return None


def _owned(qs, request, owners_path: str):
    if request.user.is_superuser:
        return qs
    return qs.filter(**{owners_path: request.user}).distinct()


@admin.register(Scene)
class SceneAdmin(admin.ModelAdmin):
    """The scene page, top to bottom: what clients get now (in words; the raw config folded), the versions
    (key metric and live share; the rest in a details row), the split editor with its own Publish button, the
    history with one-click rollback, and the scene's own settings (description, owners) with their own Save.
    Each part has its own context function (``scene_context``; A/B results add theirs beside it)."""

    list_display = ["name", "description", "live_traffic", "versions_count", "owner_names"]
    search_fields = ["name", "description"]
    filter_horizontal = ["owners"]
    change_form_template = "admin/deploy/scene/change_form.html"

    class Media:
        css = {"all": ["mlab/admin.css", "deploy/scene.css"]}
        js = ["deploy/scene.js"]

    def get_queryset(self, request):
        return selectors.scene_list(user=request.user)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "description", "owners"]
        return ["name", "description", "owners", "salt", *services.RESULTS_SETTINGS]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["name", "salt"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        owners = form.base_fields.get("owners")
        if isinstance(owners, forms.ModelMultipleChoiceField):
            owners.queryset = selectors.scene_owner_candidates(scene=obj)
        if obj is None and "owners" in form.base_fields:
            form.base_fields["owners"].required = False
            form.base_fields["owners"].help_text = "You become an owner too."
        return form

    def has_change_permission(self, request, obj=None):
        if obj is not None and not selectors.scene_owned_by(obj, request.user):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # versions and deployments keep their history; a scene is never deleted

    @admin.display(description="live traffic")
    def live_traffic(self, scene: Scene) -> str:
        config = getattr(scene, "config", None)
        if not config or not config.revision:
            return "nothing published"
        return f"r{config.revision}: {selectors.config_summary(config.content)}"

    @admin.display(description="versions")
    def versions_count(self, scene: Scene) -> int:
        return getattr(scene, "version_count", None) or scene.versions.count()

    @admin.display(description="owners")
    def owner_names(self, scene: Scene) -> str:
        return ", ".join(owner.username for owner in scene.owners.all())

    def save_model(self, request, obj, form, change):
        if change:
            services.scene_update(
                scene=obj,
                description=form.cleaned_data["description"],
                owners=form.cleaned_data["owners"],
                **{name: form.cleaned_data[name] for name in services.RESULTS_SETTINGS if name in form.cleaned_data},
            )
            return
        created = services.scene_create(
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            owners=form.cleaned_data["owners"],
            user=request.user,
        )
        obj.pk, obj.salt, obj.created_at = created.pk, created.salt, created.created_at

    def save_related(self, request, form, formsets, change):
        pass  # the services set the owners

    # --- the scene page ---------------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/deploy/", wrap(self.deploy_view), name="deploy_scene_deploy"),
            path("<path:object_id>/rollback/", wrap(self.rollback_view), name="deploy_scene_rollback"),
            path("register-run/<int:run_id>/", wrap(self.register_run_view), name="deploy_scene_register_run"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        scene = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if scene is not None:
            extra.update(self.scene_context(request, scene), title=f"Scene {scene.name}", subtitle=None)
            # The scene's own form is "Scene settings" at the bottom of the page, with one Save button of its own.
            extra.update(show_save_and_add_another=False, show_save_and_continue=False, show_delete=False)
            extra.update(scene_results_context(scene))
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def response_change(self, request, obj):
        self.message_user(request, f"Settings of {obj.name} saved.", messages.SUCCESS)
        return HttpResponseRedirect(self._scene_url(obj, "#scene-settings"))

    def scene_context(self, request, scene: Scene, *, split_form: SplitEditorForm | None = None) -> dict:
        versions = list(selectors.model_version_list(scene=scene))
        entry = ConfigEntry.objects.filter(scene=scene).first()
        latest = selectors.deployment_list(scene=scene).first()
        weights = {row["version"]: row["weight"] for row in latest.splits} if latest else {}
        overrides = latest.overrides if latest else {}
        published = entry is not None and entry.revision > 0
        shares = selectors.config_shares(entry.content) if entry and published else {}
        pinned: dict[int, int] = {}
        for version in (entry.content.get("overrides") or {}).values() if entry and published else []:
            pinned[version] = pinned.get(version, 0) + 1
        can_change = self.has_change_permission(request, scene)
        publishing = latest is not None and latest.revision > (entry.revision if entry else 0)
        return {
            "scene_obj": scene,
            "versions_table": [self._version_row(v, shares.get(v.version), pinned.get(v.version, 0)) for v in versions],
            "split_form": split_form
            or SplitEditorForm(
                versions=versions,
                weights=weights,
                overrides=overrides,
                control=latest.control_version if latest else None,
                prefix="split",
            ),
            "config_entry": entry,
            "live_summary": selectors.config_summary(entry.content) if entry and published else "",
            "config_json": json.dumps(entry.content, indent=2, sort_keys=True) if entry and published else "",
            "history": selectors.scene_history(scene=scene),
            "latest_revision": latest.revision if latest else 0,
            # a saved revision not live yet: the page follows its publication (apps/deploy/static/deploy/scene.js)
            "publishing": publishing,
            "pending_summary": selectors.deployment_summary(latest) if publishing and latest else "",
            "can_deploy": can_change and request.user.has_perm("deploy.add_deployment"),
        }

    @staticmethod
    def _version_row(version: ModelVersion, share: float | None, pinned: int) -> dict:
        """A version as the versions table shows it: the key metric and the live share in the row, everything
        else in its details row."""
        headline = key_metric(version.metrics)
        guide = metric_guide(headline[0]) if headline else None
        return {
            "version": version,
            "key_metric": {
                "label": guide.label if guide else "",
                "shown": human_number(headline[1]) if headline else "—",
                "verdict": guide.verdict(headline[1], version.metrics) if guide and headline else None,
            },
            "metrics": metric_rows(version.metrics),
            "size": human_size(version.size),
            "run_url": _admin_url("training_trainingrun_change", version.run_id),
            "template_url": _admin_url("algo_templates_algorithmtemplate_change", version.run.template_id),
            "published_share": share,
            "share_text": selectors.percent_text(share) if share else "—",
            "pinned": pinned,
        }

    def _scene_or_404(self, request, object_id) -> Scene:
        scene = self.get_object(request, object_id)
        if scene is None:
            raise Http404("No such scene.")
        if not (self.has_change_permission(request, scene) and request.user.has_perm("deploy.add_deployment")):
            raise PermissionDenied
        return scene

    def _scene_url(self, scene: Scene, anchor: str = "") -> str:
        return reverse("admin:deploy_scene_change", args=[scene.pk]) + anchor

    def deploy_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        scene = self._scene_or_404(request, object_id)
        versions = list(selectors.model_version_list(scene=scene))
        form = SplitEditorForm(request.POST, versions=versions, weights={}, overrides={}, prefix="split")
        if form.is_valid():
            try:
                deployment = services.deployment_create(
                    scene=scene,
                    splits=form.splits(),
                    overrides=form.cleaned_data["overrides"],
                    comment=form.cleaned_data["comment"],
                    control_version=form.cleaned_data["control"],
                    user=request.user,
                )
            except ValidationError as exc:
                fields = {"overrides": "overrides", "control_version": "control"}
                for field, errors in exc.message_dict.items():
                    form.add_error(fields.get(field), errors)
            else:
                self.message_user(
                    request,
                    f"Revision {deployment.revision} of {scene.name} saved "
                    f"({selectors.deployment_summary(deployment)}); it is being published.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(self._scene_url(scene, "#published"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": scene,
            "title": f"Deploy {scene.name}",
            "media": self.media,
            **self.scene_context(request, scene, split_form=form),
        }
        return TemplateResponse(request, "admin/deploy/scene/deploy.html", context, status=400)

    def rollback_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        scene = self._scene_or_404(request, object_id)
        try:
            revision = int(request.POST.get("revision", ""))
            deployment = services.deployment_rollback(scene=scene, revision=revision, user=request.user)
        except (ValueError, Deployment.DoesNotExist):
            self.message_user(request, f"{scene.name} has no such revision to roll back to.", messages.ERROR)
        else:
            self.message_user(
                request,
                f"Rolled back: revision {deployment.revision} copies revision {revision} "
                f"({selectors.deployment_summary(deployment)}); it is being published.",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(self._scene_url(scene, "#published"))

    def register_run_view(self, request, run_id: int):
        """Register a succeeded run as the next version of one of your scenes (reached from the run page)."""
        run = training_run_list(user=request.user).filter(pk=run_id).first()
        if run is None:
            raise Http404("No such run.")
        if not (request.user.has_perm("deploy.add_modelversion") and request.user.has_perm("deploy.view_scene")):
            raise PermissionDenied
        scenes = self.get_queryset(request)
        form = RegisterRunForm(
            request.POST if request.method == "POST" else None,
            scenes=scenes,
            initial={"scene": selectors.scene_for_run(scenes=scenes, template_id=run.template_id)},
        )
        if request.method == "POST" and form.is_valid():
            try:
                scene, version, created = services.scene_run_register(
                    run=run,
                    user=request.user,
                    scene=form.cleaned_data["scene"],
                    new_scene=form.cleaned_data["new_scene"],
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error("new_scene" if field == "name" else None, errors)
            else:
                verb = "is now" if created else "was already"
                self.message_user(
                    request,
                    f"Run {run.pk} {verb} {scene.name} v{version.version}. To serve it, give it a share of the units "
                    "in the split below and publish.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(self._scene_url(scene))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Register run {run.pk} as a model version",
            "run": run,
            "metric_rows": metric_rows(run.metrics),
            "form": form,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/deploy/scene/register_run.html", context)


def register_run_url(run_id: int) -> str:
    """The admin page registering run ``run_id`` as a version (for a button on the run page)."""
    return reverse("admin:deploy_scene_register_run", args=[run_id])


class _ReadOnlyAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_FORMFIELD_OVERRIDES

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(_ReadOnlyAdmin):
    list_display = ["scene", "version", "run", "format", "model_size", "short_sha", "created_by", "created_at"]
    list_filter = [("scene", admin.RelatedOnlyFieldListFilter)]  # only the scenes of rows the user sees
    list_select_related = ["scene", "run", "created_by"]

    def get_queryset(self, request):
        return _owned(super().get_queryset(request), request, "scene__owners")

    @admin.display(description="size", ordering="size")
    def model_size(self, version: ModelVersion) -> str:
        return human_size(version.size)

    @admin.display(description="sha256")
    def short_sha(self, version: ModelVersion) -> str:
        return version.sha256[:12]


@admin.register(Deployment)
class DeploymentAdmin(_ReadOnlyAdmin):
    """Deployments are made on the scene page (or the API, or `deploy`): here they are only listed."""

    list_display = ["scene", "revision", "split_text", "comment", "author", "rollback_of", "created_at"]
    list_filter = [("scene", admin.RelatedOnlyFieldListFilter)]  # only the scenes of rows the user sees
    list_select_related = ["scene", "author"]

    def get_queryset(self, request):
        return _owned(super().get_queryset(request), request, "scene__owners")

    @admin.display(description="split")
    def split_text(self, deployment: Deployment) -> str:
        return ", ".join(f"v{row['version']} {row['weight']}%" for row in deployment.splits)


@admin.register(ClientToken)
class ClientTokenAdmin(admin.ModelAdmin):
    """Tokens for client processes. The token is shown once, when created; only its digest is stored."""

    list_display = ["name", "hint_text", "scene_names", "created_by", "created_at"]
    fields = ["name", "scenes"]
    filter_horizontal = ["scenes"]

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("created_by").prefetch_related("scenes")
        if request.user.is_superuser:
            return qs
        return qs.filter(Q(created_by=request.user) | Q(scenes__owners=request.user)).distinct()

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "scenes":
            kwargs["queryset"] = _owned(Scene.objects.all(), request, "owners")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    @admin.display(description="token")
    def hint_text(self, token: ClientToken) -> str:
        return f"{token.hint}…"

    @admin.display(description="scenes")
    def scene_names(self, token: ClientToken) -> str:
        return ", ".join(scene.name for scene in token.scenes.all())

    def save_model(self, request, obj, form, change):
        token, key = services.client_token_create(
            name=form.cleaned_data["name"], scenes=form.cleaned_data["scenes"], user=request.user
        )
        obj.pk, obj.hint = token.pk, token.hint
        request._mlab_client_token = key  # shown once by response_add, never stored, logged or put in a cookie

    def save_related(self, request, form, formsets, change):
        pass  # the service set the scenes

    def delete_model(self, request, obj):
        services.client_token_revoke(token=obj)

    def delete_queryset(self, request, queryset):
        for token in queryset:
            services.client_token_revoke(token=token)

    def response_add(self, request, obj, post_url_continue=None):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Client token {obj.name}",
            "token": obj,
            "key": request._mlab_client_token,
            "scenes": obj.scenes.all(),
        }
        return TemplateResponse(request, "admin/deploy/clienttoken/created.html", context)
