"""The admin of the project's own models: people's API tokens, issued here (shown once) and revoked by delete.
And the page a locked-out admin login gets (django-axes)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.template.response import TemplateResponse

from .models import ApiToken
from .tokens import api_token_create, api_token_revoke


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens of people. The token is shown once, when issued; only its digest is stored. A superuser
    issues tokens for anyone and sees them all; everyone else issues and sees their own."""

    list_display = ["name", "hint_text", "user", "created_at", "last_used_at"]
    list_select_related = ["user"]
    search_fields = ["name", "hint", "user__username"]
    readonly_fields = ["hint_text", "created_at", "last_used_at"]

    def get_fields(self, request, obj=None):
        if obj is not None:
            return ["name", "user", "hint_text", "created_at", "last_used_at"]
        return ["user", "name"] if request.user.is_superuser else ["name"]

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("user")
        return qs if request.user.is_superuser else qs.filter(user=request.user)

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)  # issued, then only read or revoked

    @admin.display(description="token")
    def hint_text(self, token: ApiToken) -> str:
        return f"{token.hint}…"

    def save_model(self, request, obj, form, change):
        user = form.cleaned_data.get("user") if request.user.is_superuser else request.user
        token, key = api_token_create(user=user, name=form.cleaned_data["name"])
        obj.pk, obj.hint, obj.user = token.pk, token.hint, token.user
        request._mlab_api_token = key  # shown once by response_add, never stored, logged or put in a cookie

    def delete_model(self, request, obj):
        api_token_revoke(token=obj)

    def delete_queryset(self, request, queryset):
        for token in queryset:
            api_token_revoke(token=token)

    def response_add(self, request, obj, post_url_continue=None):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"API token {obj.name}",
            "token": obj,
            "key": request._mlab_api_token,
        }
        return TemplateResponse(request, "admin/mlabsite/apitoken/created.html", context)


def login_locked_out(request, original_response=None, credentials=None):
    """What django-axes answers a login it refuses (AXES_LOCKOUT_CALLABLE): a plain page, 429."""
    minutes = max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    context = {
        **admin.site.each_context(request),
        "title": "Too many failed logins",
        "minutes": minutes,
        "failure_limit": settings.AXES_FAILURE_LIMIT,
    }
    return TemplateResponse(request, "admin/locked_out.html", context, status=429).render()
