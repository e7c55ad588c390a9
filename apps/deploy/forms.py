"""Admin forms of the deploy app: the split editor and registering a run as a version."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from .models import ModelVersion, Scene


def overrides_text(overrides: dict) -> str:
    return "\n".join(f"{unit} = {version}" for unit, version in overrides.items())


class SplitEditorForm(forms.Form):
    """One weight per registered version (whole percentages summing to 100), gray-release overrides as
    ``unit id = version`` lines, and a comment. The service checks everything again."""

    overrides = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 40, "placeholder": "user-42 = 2"}),
        help_text="Gray release: one unit per line, <code>unit id = version</code>. These units always get that "
        "version, whatever the split.",
    )
    comment = forms.CharField(required=False, widget=forms.TextInput(attrs={"size": 60}))
    control = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        label="Control",
        help_text="The version the results compare the others with. Default: the one with the largest weight.",
    )

    def __init__(
        self,
        *args,
        versions: list[ModelVersion],
        weights: dict[int, int],
        overrides: dict,
        control: int | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        control_field = self.fields["control"]
        assert isinstance(control_field, forms.TypedChoiceField)
        control_field.choices = [("", "the largest weight"), *((v.version, f"v{v.version}") for v in versions)]
        control_field.initial = control
        self.versions = versions
        self.weight_fields = []
        for version in versions:
            name = f"weight_{version.version}"
            self.fields[name] = forms.IntegerField(
                label=f"v{version.version}",
                min_value=0,
                max_value=100,
                required=False,
                initial=weights.get(version.version, 0),
                widget=forms.NumberInput(attrs={"class": "mlab-weight", "size": 4, "step": 1}),
            )
            self.weight_fields.append((version, name))
        self.fields["overrides"].initial = overrides_text(overrides)

    def rows(self):
        """(version, bound weight field) pairs for the template: one row per version."""
        return [(version, self[name]) for version, name in self.weight_fields]

    def clean_overrides(self) -> dict[str, int]:
        cleaned, errors = {}, []
        for number, line in enumerate(self.cleaned_data["overrides"].splitlines(), start=1):
            if not line.strip():
                continue
            unit, sep, version = line.rpartition("=")
            unit = unit.strip()
            if not sep or not unit:
                errors.append(f"Line {number}: write “unit id = version”.")
                continue
            try:
                cleaned[unit] = int(version.strip())
            except ValueError:
                errors.append(f"Line {number}: {version.strip()!r} is not a version number.")
        if errors:
            raise ValidationError(errors)
        return cleaned

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        if not self.weight_fields:
            raise ValidationError("Register a version first.")
        if any(name in self.errors for _, name in self.weight_fields):
            return cleaned
        total = sum(cleaned.get(name) or 0 for _, name in self.weight_fields)
        if total != 100:
            raise ValidationError(f"The weights must sum to 100; they sum to {total}.")
        return cleaned

    def splits(self) -> list[dict]:
        return [
            {"version": version.version, "weight": self.cleaned_data[name]}
            for version, name in self.weight_fields
            if self.cleaned_data.get(name)
        ]


class RegisterRunForm(forms.Form):
    """Which scene a succeeded run joins: one you own, or a new one."""

    scene = forms.ModelChoiceField(queryset=Scene.objects.none(), required=False, empty_label="— a new scene —")
    new_scene = forms.SlugField(
        required=False, max_length=64, help_text="Name of the new scene, e.g. seller-union-ctr."
    )

    def __init__(self, *args, scenes, **kwargs):
        super().__init__(*args, **kwargs)
        scene_field = self.fields["scene"]
        assert isinstance(scene_field, forms.ModelChoiceField)
        scene_field.queryset = scenes

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        if not cleaned.get("scene") and not cleaned.get("new_scene") and not self.errors:
            raise ValidationError("Choose one of your scenes, or name a new one.")
        if cleaned.get("scene") and cleaned.get("new_scene"):
            self.add_error("new_scene", "Leave this empty when you choose an existing scene.")
        return cleaned
