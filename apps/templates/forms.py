"""The Launch form of a template, generated at run time from node metadata.

Each parameter becomes a field named ``<node key>__<param>``; fields are grouped per node and per group
(fields / parameters / tuning). Django's fields give the widgets and the first checks; the shared validator
(:func:`validate_run_params`) then decides, so the form, the API and the JSON Schema agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django import forms

from mlabsite.formfields import JSONFormField

from .models import AlgorithmTemplate
from .nodes import ColumnAllowList, Group, Param, ParamType
from .validation import NodeSpec, RunParamsInvalid, validate_run_params

SEPARATOR = "__"
BOOL_CHOICES = [("true", "Yes"), ("false", "No")]


def field_name(node_key: str, param_name: str) -> str:
    return f"{node_key}{SEPARATOR}{param_name}"


def _display_initial(param: Param, value: Any) -> Any:
    if value is None or param.secret:
        return None
    if param.type == ParamType.BOOL:
        return "true" if value else "false"
    if param.type == ParamType.COLUMNS:
        return ", ".join(value)
    if param.type in (ParamType.CONDITIONS, ParamType.JOINS):
        return value  # forms.JSONField renders it as JSON
    return value


class ColumnsField(forms.CharField):
    """Comma-separated column names → list."""

    def to_python(self, value):
        text = super().to_python(value)
        return [part.strip() for part in text.split(",") if part.strip()] if text else None


class ColumnsPickerField(forms.Field):
    """Columns chosen in a multi-select fed by introspection → list (in option order, each name once).

    Any posted name passes through: the shared validator judges it against the allow-list, as for the API.
    """

    widget = forms.SelectMultiple

    def to_python(self, value):
        if not value:
            return None
        values = [value] if isinstance(value, str) else list(value)
        return list(dict.fromkeys(v.strip() for v in values if v.strip())) or None

    def prepare_value(self, value):
        return value if isinstance(value, list | tuple) else ([] if value is None else [value])


def column_choices(columns: Mapping[str, Mapping[str, str]], current: Any = None, *, blank: bool = False) -> list:
    """Options grouped per table: the value is the column name, the label shows its type. ``current`` (a
    preset that is not in the source) stays selectable so that the form shows what will be refused."""
    groups: list = [("", "—")] if blank else []
    known: set[str] = set()
    for table, table_columns in columns.items():
        groups.append((table, [(c, f"{c} · {t}") for c, t in table_columns.items()]))
        known.update(table_columns)
    extra = [v for v in (current if isinstance(current, list) else [current]) if v and v not in known]
    if extra:
        groups.append(("not in this source", [(v, v) for v in extra]))
    return groups


def _picker_field(param: Param, initial: Any, columns: Mapping[str, Mapping[str, str]], common: dict) -> forms.Field:
    """Pickers for table, column and columns parameters once the data source's allow-list is known."""
    t = param.type
    field: forms.Field
    if t == ParamType.TABLE:
        tables = [("", "—")] + [(name, name) for name in columns]
        if initial and initial not in columns:
            tables.append((initial, f"{initial} (not in this source)"))
        field = forms.CharField(widget=forms.Select(choices=tables), strip=False, **common)
    elif t == ParamType.COLUMN:
        field = forms.CharField(
            widget=forms.Select(choices=column_choices(columns, initial, blank=True)), strip=False, **common
        )
    else:
        field = ColumnsPickerField(widget=forms.SelectMultiple(choices=column_choices(columns, initial)), **common)
        field.widget.attrs["size"] = 8
    field.widget.attrs["class"] = "mlab-picker"
    field.widget.attrs["data-picker"] = t.value
    return field


def make_field(
    param: Param, initial: Any, *, locked: bool, columns: Mapping[str, Mapping[str, str]] | None = None
) -> forms.Field:
    """The Django form field for one parameter; widgets follow the parameter type, and become pickers fed
    by the data source's allow-list (``columns``) for tables and columns."""
    common: dict[str, Any] = {"required": False, "label": param.label, "help_text": param.help}
    t = param.type
    if columns is not None and t in (ParamType.TABLE, ParamType.COLUMN, ParamType.COLUMNS):
        field = _picker_field(param, initial, columns, common)
        field.initial = initial
        if param.required and initial is None:
            field.widget.attrs["required"] = True
        field.disabled = locked
        return _with_param(field, param)
    if t in (ParamType.INT, ParamType.FLOAT):
        # Bounds are checked by the shared validator (same message as the API); the browser gets hints.
        if t == ParamType.INT:
            field = forms.IntegerField(**common)
        else:
            field = forms.FloatField(widget=forms.NumberInput(attrs={"step": "any"}), **common)
        if param.min is not None:
            field.widget.attrs["min"] = param.min
        if param.max is not None:
            field.widget.attrs["max"] = param.max
    elif t == ParamType.BOOL:
        field = forms.ChoiceField(choices=BOOL_CHOICES, **common)
    elif t == ParamType.CHOICE:
        blank = [] if initial is not None else [("", "—")]
        field = forms.ChoiceField(choices=blank + [(c, c) for c in param.choices], **common)
    elif t == ParamType.DATE:
        # Browsers submit <input type=date> as YYYY-MM-DD; the shared validator checks it like the API does.
        attrs = {"type": "date", "min": param.min, "max": param.max}
        field = forms.CharField(widget=forms.DateInput(attrs=attrs), strip=False, **common)
    elif t == ParamType.COLUMNS:
        field = ColumnsField(max_length=20_000, **common)
        field.widget.attrs["placeholder"] = "column_a, column_b"
    elif t in (ParamType.CONDITIONS, ParamType.JOINS):
        # Posted as JSON either way; with a data source, launch.js edits it as rows of pickers.
        attrs = {"rows": 3, "class": "mlab-json", "data-rows": t.value}
        field = JSONFormField(widget=forms.Textarea(attrs=attrs), **common)
    elif param.secret:
        field = forms.CharField(widget=forms.PasswordInput(render_value=False), strip=False, **common)
    else:  # str, column, table: passed on unchanged, so that the form and the API judge the same text
        field = forms.CharField(strip=False, **common)
    field.initial = _display_initial(param, initial)
    if param.required and initial is None:
        field.widget.attrs["required"] = True
    if locked:
        # Rendered read-only and cleaned from the preset; a tampered submission is still checked (see clean).
        field.disabled = True
    return _with_param(field, param)


def _with_param(field: forms.Field, param: Param) -> forms.Field:
    """Hang the parameter on its field: the Launch page reads ``field.field.param`` for its badges.
    Django's fields declare no such attribute, hence setattr."""
    setattr(field, "param", param)  # noqa: B010
    return field


def _to_json_value(param: Param, value: Any) -> Any:
    if param.type == ParamType.BOOL:
        return {"true": True, "false": False}.get(value)
    return value


@dataclass
class FieldGroup:
    group: Group
    fields: list[forms.BoundField]


@dataclass
class NodeFieldset:
    spec: NodeSpec
    groups: list[FieldGroup]


class LaunchForm(forms.Form):
    """Base of the generated forms; ``launch_form_class`` fills in ``template`` and ``specs``."""

    template: AlgorithmTemplate | None = None
    specs: list[NodeSpec] = []
    allowlist: ColumnAllowList | None = None

    def fieldsets(self) -> list[NodeFieldset]:
        result = []
        for spec in self.specs:
            groups = []
            for group in Group:
                bound = [self[field_name(spec.key, p.name)] for p in spec.node_type.params if p.group == group]
                if bound:
                    groups.append(FieldGroup(group, bound))
            result.append(NodeFieldset(spec, groups))
        return result

    def submitted_params(self) -> dict[str, dict[str, Any]]:
        """What the business developer gave, as JSON values; blank fields are left to the defaults."""
        params: dict[str, dict[str, Any]] = {}
        for spec in self.specs:
            for param in spec.node_type.params:
                name = field_name(spec.key, param.name)
                field = self.fields[name]
                if field.disabled:
                    value = self._tampered_locked_value(name, field)
                else:
                    value = self.cleaned_data.get(name)
                if value in (None, "", []) and not (param.is_list and value == [] and name in self.data):
                    continue
                params.setdefault(spec.key, {})[param.name] = _to_json_value(param, value)
        return params

    def _tampered_locked_value(self, name: str, field: forms.Field) -> Any:
        """Browsers do not submit disabled inputs; if a value arrives anyway, pass it on to be refused."""
        if name not in self.data:
            return None
        try:
            return field.clean(field.widget.value_from_datadict(self.data, self.files, self.add_prefix(name)))
        except forms.ValidationError:
            return self.data.get(name)

    def clean(self):
        super().clean()
        params = self.submitted_params()
        assert self.template is not None  # launch_form_class made this form for a template
        try:
            self.validated_params = validate_run_params(
                self.template, params, allowlist=self.allowlist, specs=self.specs
            )
        except RunParamsInvalid as invalid:
            self._add_run_errors(invalid.errors)
        return self.cleaned_data

    def _add_run_errors(self, errors: Mapping[str, Any]) -> None:
        labels = {spec.key: spec.node_type.label for spec in self.specs}
        for node_key, node_errors in errors.items():
            if isinstance(node_errors, list):
                for message in node_errors:
                    self.add_error(None, f"{labels.get(node_key, node_key)}: {message}")
                continue
            for param_name, messages in node_errors.items():
                name = field_name(node_key, param_name)
                for message in messages:
                    if name in self.fields and name not in self.errors:
                        self.add_error(name, message)
                    elif name not in self.fields:
                        self.add_error(None, f"{labels.get(node_key, node_key)}: {message}")


def launch_form_class(template, *, allowlist: ColumnAllowList | None = None) -> type[LaunchForm]:
    """Build the Launch form class of ``template`` (its nodes should be prefetched). With ``allowlist`` (the
    chosen data source's tables and columns) names are picked from it and validated against it."""
    columns = allowlist.columns if allowlist is not None else None
    specs = [NodeSpec.from_model(node) for node in template.nodes.all()]
    fields: dict[str, forms.Field] = {}
    for spec in specs:
        for param in spec.node_type.params:
            initial = spec.overrides.get(param.name, param.default)
            fields[field_name(spec.key, param.name)] = make_field(
                param, initial, locked=param.name in spec.locked, columns=columns
            )
    attrs = {"template": template, "specs": specs, "allowlist": allowlist, **fields}
    return type(f"LaunchForm_{template.slug.replace('-', '_')}", (LaunchForm,), attrs)


def dump_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=str)
