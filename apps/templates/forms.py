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
from django.http import QueryDict

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
    """Columns ticked in a :class:`ColumnsPicker` → list (in the order posted, each name once).

    The picker always posts its name (an empty hidden value), so "nothing ticked" arrives as ``[]`` and is not
    mistaken for "left to the default". Any posted name passes through: the shared validator judges it against
    the allow-list, as for the API.
    """

    def to_python(self, value):
        if value is None:
            return None
        values = [value] if isinstance(value, str) else list(value)
        return list(dict.fromkeys(v.strip() for v in values if v and v.strip()))

    def prepare_value(self, value):
        return value if isinstance(value, list | tuple) else ([] if value is None else [value])


def looks_like_id(column: str) -> bool:
    """Keys, not features: ``id``, ``user_id``, ``itemId``."""
    lowered = column.lower()
    return lowered == "id" or lowered.endswith("_id") or (column.endswith("Id") and len(column) > 2)


@dataclass(frozen=True)
class ColumnOption:
    value: str
    table: str
    type: str
    index: int  # the column's place in its table's list, so that an unticked column goes back where it was
    note: str = ""  # why a ticked column is not offered (not in the source, not a number…)


class ColumnsPicker(forms.Widget):
    """Checkboxes for a columns parameter: the ticked columns listed first, then each table's offered columns
    (each column once, under the table it is read from), a filter box and a count (``static/mlab/launch.js``).
    Without JavaScript it is a plain list of checkboxes that posts the same names."""

    template_name = "mlab/widgets/columns_picker.html"

    def __init__(self, *, offered: dict[str, list[ColumnOption]], unfit: dict[str, str], excludes: list[str]):
        super().__init__()
        self.offered = offered  # table → options, in the order pickers list them
        self.unfit = unfit  # column → why it is not offered (for a ticked one)
        self.excludes = excludes  # names of sibling fields whose column is not offered here

    def value_from_datadict(self, data, files, name):
        if name not in data:
            return None
        return data.getlist(name) if hasattr(data, "getlist") else data.get(name)

    def value_omitted_from_data(self, data, files, name):
        return name not in data

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        chosen = [v for v in (value if isinstance(value, list | tuple) else [value]) if v]
        by_name = {o.value: o for options in self.offered.values() for o in options}
        selected = [
            by_name.get(v) or ColumnOption(v, "", "", -1, self.unfit.get(v, "not in this source")) for v in chosen
        ]
        groups = [
            {"table": table, "options": [o for o in options if o.value not in chosen]}
            for table, options in self.offered.items()
        ]
        context["widget"].update(
            selected=selected,
            groups=groups,
            offered_count=len(by_name),
            excludes=" ".join(self.excludes),
        )
        return context


def _table_order(columns: Mapping[str, Mapping[str, str]], node_values: Mapping[str, Any]) -> list[str]:
    """The node's chosen table, then its joined tables, then the others: a column present in several tables is
    listed under the first, which is the one the sample reads it from (join keys come from the chosen table)."""
    first = [node_values.get("table")] + [j.get("table") for j in node_values.get("joins") or [] if isinstance(j, dict)]
    ordered = [t for t in dict.fromkeys(first) if isinstance(t, str) and t in columns]
    return ordered + [t for t in columns if t not in ordered]


def _columns_picker(param: Param, allowlist: ColumnAllowList, node_values: Mapping[str, Any]) -> ColumnsPicker:
    """Each column once, under its table; with ``param.accepts``, only the kinds that fit, and never an id,
    a date or a column chosen by a sibling named in ``param.excludes`` (the label)."""
    columns = allowlist.columns
    excluded = {node_values.get(name) for name in param.excludes} - {None}
    offered: dict[str, list[ColumnOption]] = {}
    unfit: dict[str, str] = {}
    seen: set[str] = set()
    for table in _table_order(columns, node_values):
        for index, (column, type_name) in enumerate(columns[table].items()):
            if column in seen:
                continue
            seen.add(column)
            reason = _unfit(param, allowlist, table, column, excluded)
            if reason:
                unfit[column] = reason
                continue
            offered.setdefault(table, []).append(ColumnOption(column, table, type_name, index))
    return ColumnsPicker(offered=offered, unfit=unfit, excludes=list(param.excludes))


def _unfit(param: Param, allowlist: ColumnAllowList, table: str, column: str, excluded: set) -> str:
    """Why ``column`` is not offered by ``param``'s picker ("" when it is)."""
    if not param.accepts:
        return ""
    if column in excluded:
        return "the label"
    if looks_like_id(column):
        return "an id"
    traits = allowlist.column_traits(table, column)
    if traits & set(param.accepts):
        return ""
    kind = next(iter(sorted(traits)), "unknown")
    return "a number with many values" if kind == "number" else f"a {kind} column"


def column_choices(
    columns: Mapping[str, Mapping[str, str]],
    current: Any = None,
    *,
    blank: bool = False,
    order: list[str] | None = None,
) -> list:
    """Options grouped per table, each column once (under the first table of ``order`` that has it): the value
    is the column name, the label shows its type. ``current`` (a preset that is not in the source) stays
    selectable so that the form shows what will be refused."""
    groups: list = [("", "—")] if blank else []
    known: set[str] = set()
    for table in order or list(columns):
        options = [(c, f"{c} · {t}") for c, t in columns[table].items() if c not in known]
        known.update(columns[table])
        if options:
            groups.append((table, options))
    extra = [v for v in (current if isinstance(current, list) else [current]) if v and v not in known]
    if extra:
        groups.append(("not in this source", [(v, v) for v in extra]))
    return groups


def _picker_field(
    param: Param, initial: Any, allowlist: ColumnAllowList, node_values: Mapping[str, Any], common: dict
) -> forms.Field:
    """Pickers for table, column and columns parameters once the data source's allow-list is known."""
    columns = allowlist.columns
    t = param.type
    field: forms.Field
    if t == ParamType.TABLE:
        tables = [("", "—")] + [(name, name) for name in columns]
        if initial and initial not in columns:
            tables.append((initial, f"{initial} (not in this source)"))
        field = forms.CharField(widget=forms.Select(choices=tables), strip=False, **common)
        field.widget.attrs["class"] = "mlab-picker"
    elif t == ParamType.COLUMN:
        choices = column_choices(columns, initial, blank=True, order=_table_order(columns, node_values))
        field = forms.CharField(widget=forms.Select(choices=choices), strip=False, **common)
        field.widget.attrs["class"] = "mlab-picker"
    else:
        field = ColumnsPickerField(widget=_columns_picker(param, allowlist, node_values), **common)
    field.widget.attrs["data-picker"] = t.value
    return field


def make_field(
    param: Param,
    initial: Any,
    *,
    locked: bool,
    allowlist: ColumnAllowList | None = None,
    node_values: Mapping[str, Any] | None = None,
) -> forms.Field:
    """The Django form field for one parameter; widgets follow the parameter type, and become pickers fed
    by the data source's allow-list for tables and columns. ``node_values`` are the node's starting values
    (presets and defaults): they decide how columns pickers list the tables and what they leave out."""
    common: dict[str, Any] = {"required": False, "label": param.label, "help_text": param.help}
    t = param.type
    if allowlist is not None and t in (ParamType.TABLE, ParamType.COLUMN, ParamType.COLUMNS):
        field = _picker_field(param, initial, allowlist, node_values or {}, common)
        field.initial = initial
        if param.required and initial is None and t != ParamType.COLUMNS:
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


def _posted(param: Param, field: forms.Field, value: Any) -> list[str]:
    """A JSON value of ``param`` as the browser posts it in ``field``."""
    if isinstance(field, ColumnsPickerField):
        return ["", *(str(v) for v in value)] if isinstance(value, list) else ["", str(value)]
    if param.type == ParamType.BOOL:
        return ["true" if value else "false"]
    if param.type == ParamType.COLUMNS and isinstance(value, list):
        return [", ".join(str(v) for v in value)]
    if param.type in (ParamType.CONDITIONS, ParamType.JOINS):
        return [json.dumps(value)]
    return [str(value)]


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

    @classmethod
    def data_for(cls, params: Mapping[str, Any]) -> tuple[QueryDict, list[str]]:
        """Form data that fills this form with a run's recorded ``params`` ("Edit and relaunch"): every value
        as the browser would post it, secrets left empty. Also returns what could not be carried over (a node
        or parameter the template no longer has), as "node.param" lines."""
        data = QueryDict(mutable=True)
        dropped: list[str] = []
        specs = {spec.key: spec for spec in cls.specs}
        for node_key, values in (params or {}).items():
            spec = specs.get(node_key)
            if spec is None or not isinstance(values, Mapping):
                dropped.append(f"{node_key}: the template has no such node any more")
                continue
            for name, value in values.items():
                param = spec.node_type.param_map.get(name)
                if param is None:
                    dropped.append(f"{node_key}.{name}: no longer a parameter of this node")
                    continue
                if param.secret or value is None:
                    continue
                field = cls.base_fields[field_name(node_key, name)]
                data.setlist(field_name(node_key, name), _posted(param, field, value))
        return data, dropped

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
    specs = [NodeSpec.from_model(node) for node in template.nodes.all()]
    fields: dict[str, forms.Field] = {}
    for spec in specs:
        node_values = {p.name: spec.overrides.get(p.name, p.default) for p in spec.node_type.params}
        for param in spec.node_type.params:
            fields[field_name(spec.key, param.name)] = make_field(
                param,
                node_values[param.name],
                locked=param.name in spec.locked,
                allowlist=allowlist,
                node_values=node_values,
            )
    attrs = {"template": template, "specs": specs, "allowlist": allowlist, **fields}
    return type(f"LaunchForm_{template.slug.replace('-', '_')}", (LaunchForm,), attrs)


def dump_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=str)
