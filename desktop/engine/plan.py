"""What a chat request becomes before it decodes: its tools checked, its output grammar made,
and its prompt rendered through the model's template with the tools and the thinking switch.

The checks run when the request arrives, so a bad tool or schema is a 400 at once; the
prompt is made on the model thread when the request reaches a slot, because it needs the
loaded model's template and vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from desktop.engine.errors import APIError, bad_request
from desktop.engine.grammar import (
    AFTER_THINKING,
    JSON_OBJECT_GRAMMAR,
    Constraint,
    SchemaError,
    check_schema,
    schema_grammar,
)
from desktop.engine.reasoning import (
    prompt_opens_thinking,
    template_switches_thinking,
    template_thinks,
)
from desktop.engine.steering import THINK_CLOSE, THINK_OPEN, Steer
from desktop.engine.toolcalls import (
    LLAMA3,
    CallSyntax,
    call_grammar,
    call_trigger,
    describe_tools,
    hermes_call_text,
    syntax_for,
    template_takes_tools,
    valid_name,
)

# Markers whose tokens some vocabularies mark as control tokens: their text must show in the
# reply for the parsers to find them.
_MARKERS = ("<tool_call>", "</tool_call>", THINK_OPEN, THINK_CLOSE, "[TOOL_CALLS]",
            "<|python_tag|>", "<|tool_call|>", "<|/tool_call|>")


@dataclass
class ToolSetup:
    """A request's tools, checked: what the template sees and what calls may be made."""

    tools: list[dict[str, Any]]
    functions: list[tuple[str, dict[str, Any]]]
    choice: str  # "auto", "none", "required" or "named"
    parallel: bool

    @property
    def forced(self) -> bool:
        return self.choice in ("required", "named")


def tool_setup(tools: list[Any] | None, tool_choice: Any, parallel: bool) -> ToolSetup | None:
    """Check *tools* and *tool_choice* (schemas.Tool and the choice as sent), or a 400."""
    if not tools:
        if tool_choice not in (None, "none", "auto"):
            raise bad_request("'tool_choice' asks for a call, but no 'tools' are given.",
                              param="tool_choice")
        return None
    rendered: list[dict[str, Any]] = []
    functions: list[tuple[str, dict[str, Any]]] = []
    for index, tool in enumerate(tools):
        where = f"tools.{index}"
        if tool.type != "function" or tool.function is None:
            raise bad_request(f"'{where}': only tools of type 'function' (with a 'function' "
                              f"object) are supported, not '{tool.type}'.", param=where)
        function = tool.function
        if not valid_name(function.name):
            raise bad_request(f"'{where}.function.name' must be 1-64 letters, digits, '_', "
                              f"'.' or '-'; got {function.name!r}.",
                              param=f"{where}.function.name")
        if any(name == function.name for name, _ in functions):
            raise bad_request(f"'{where}.function.name': two tools are called "
                              f"'{function.name}'.", param=f"{where}.function.name")
        parameters = function.parameters or {"type": "object", "properties": {}}
        if parameters.get("type", "object") != "object":
            raise bad_request(f"'{where}.function.parameters' must describe an object (the "
                              "arguments), with \"type\": \"object\".",
                              param=f"{where}.function.parameters")
        try:
            checked = check_schema(parameters)
        except SchemaError as exc:
            raise bad_request(f"'{where}.function.parameters' cannot be used at "
                              f"'{exc.where}': {exc}.", param=f"{where}.function.parameters",
                              code="unsupported_schema") from exc
        functions.append((function.name, checked))
        entry: dict[str, Any] = {"name": function.name, "parameters": parameters}
        if function.description:
            entry["description"] = function.description
        rendered.append({"type": "function", "function": entry})
    choice = "auto"
    if isinstance(tool_choice, str):
        choice = tool_choice
    elif tool_choice is not None:
        wanted = tool_choice.function.name
        chosen = [f for f in functions if f[0] == wanted]
        if not chosen:
            raise bad_request(f"'tool_choice' names the function '{wanted}', which is not "
                              "among 'tools'.", param="tool_choice")
        functions, choice = chosen, "named"
    setup = ToolSetup(rendered, functions, choice, parallel and choice != "named")
    if setup.forced:
        call_grammar(syntax_for(""), setup.functions, setup.parallel)  # a 400 now, not later
    return setup


def output_grammar(response_format: Any, param: str = "response_format") -> str | None:
    """The grammar a response_format asks for (schemas.ResponseFormat), or None for text."""
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return JSON_OBJECT_GRAMMAR
    spec = response_format.json_schema
    if spec is None or spec.schema_ is None:
        raise bad_request("'json_schema' with a 'schema' is required for type 'json_schema'.",
                          param=f"{param}.json_schema")
    return schema_grammar(spec.schema_, param=f"{param}.json_schema.schema")


@dataclass
class ChatPlan:
    """A chat request made ready for a slot, and what the reply's reader must know."""

    tokens: list[int]
    steer: Steer
    visible: frozenset[int]
    thinking: bool | None  # where the reply starts: inside the thinking, maybe, or not
    tools: ToolSetup | None = None
    syntax: CallSyntax | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def parses_calls(self) -> bool:
        return self.tools is not None and self.tools.choice != "none"


def plan_chat(model: Any, messages: list[dict[str, Any]], setup: ToolSetup | None,
              grammar: str | None, enable_thinking: bool | None,
              budget: int | None) -> ChatPlan:
    """Render and tokenize the conversation for *model* (a LoadedModel, model thread)."""
    template = model.template_text
    thinks = template_thinks(template)
    takes_tools = template_takes_tools(template)
    offer = setup if setup is not None and setup.choice != "none" else None
    syntax = syntax_for(template) if takes_tools else syntax_for("")
    shaped = _shape_messages(messages, template, takes_tools, offer)
    kwargs: dict[str, Any] = {}
    if enable_thinking is not None and template_switches_thinking(template):
        kwargs["enable_thinking"] = enable_thinking
    try:
        rendered = model.formatter(messages=shaped,
                                   tools=offer.tools if offer and takes_tools else None,
                                   **kwargs)
    except Exception as exc:  # templates raise their own errors for bad conversations
        raise APIError(400, f"The model's chat template rejected these messages: {exc}",
                       param="messages") from exc
    prompt = rendered.prompt
    constrained = grammar is not None or (offer is not None and offer.forced)
    thinking: bool | None = False
    if thinks:
        if prompt_opens_thinking(prompt):
            thinking = True
        elif enable_thinking is not False:
            thinking = None
        if enable_thinking is False and thinking:
            prompt += f"\n{THINK_CLOSE}\n\n"  # the template cannot switch it off: end it now
            thinking = False
        elif thinking is None and (constrained or budget is not None):
            prompt += f"{THINK_OPEN}\n"  # a grammar or budget needs to know where it starts
            thinking = True
    constraint = None
    if offer is not None and offer.forced:
        constraint = Constraint(call_grammar(syntax, offer.functions, offer.parallel),
                                AFTER_THINKING if thinking else None)
    elif grammar is not None:
        constraint = Constraint(grammar, AFTER_THINKING if thinking else None)
    elif offer is not None:
        trigger = call_trigger(syntax, after_thinking=bool(thinking))
        if trigger is not None:
            constraint = Constraint(call_grammar(syntax, offer.functions, offer.parallel),
                                    trigger)
    tokens = model.tokenize(prompt, add_bos=not rendered.added_special)
    close = tuple(model.tokenize(f"\n{THINK_CLOSE}\n\n", add_bos=False)) if thinks else ()
    steer = Steer(constraint, thinking, budget if thinking is not False else None, close)
    return ChatPlan(tokens, steer, visible_markers(model), thinking, setup,
                    syntax if setup is not None else None)


def _shape_messages(messages: list[dict[str, Any]], template: str, takes_tools: bool,
                    offer: ToolSetup | None) -> list[dict[str, Any]]:
    """The conversation as this template can take it: tool calls and results in its own
    fields where it has them, written out as text where it has not."""
    keeps_reasoning = "reasoning_content" in template
    names = {call["id"]: call["function"]["name"] for m in messages
             for call in m.get("tool_calls") or [] if call["id"]}
    out: list[dict[str, Any]] = []
    for message in messages:
        item = {k: v for k, v in message.items()
                if k != "reasoning_content" or keeps_reasoning}
        if takes_tools:
            if item["role"] == "tool" and "name" not in item:
                item["name"] = names.get(item.get("tool_call_id", ""), "")
            out.append(item)
            continue
        calls = item.pop("tool_calls", None)
        if calls:
            texts = [hermes_call_text(c["function"]["name"], c["function"]["arguments"])
                     for c in calls]
            item["content"] = "\n".join(([item["content"]] if item["content"] else []) + texts)
        if item["role"] == "tool":
            text = f"<tool_response>\n{item['content']}\n</tool_response>"
            if out and out[-1].get("tool_result"):
                out[-1]["content"] += "\n" + text
                continue
            item = {"role": "user", "content": text, "tool_result": True}
        out.append(item)
    for item in out:
        item.pop("tool_result", None)
    if offer is not None and not takes_tools:
        description = describe_tools(offer.tools)
        if out and out[0]["role"] == "system":
            out[0] = {**out[0], "content": description + "\n\n" + out[0]["content"]}
        else:
            out.insert(0, {"role": "system", "content": description})
    return out


def visible_markers(model: Any) -> frozenset[int]:
    """The control tokens of *model*'s vocabulary that spell a call or thinking marker."""
    cached = getattr(model, "_visible_markers", None)
    if cached is not None:
        return cached
    found = set()
    for marker in _MARKERS:
        tokens = model.tokenize(marker, add_bos=False)
        if len(tokens) == 1 and not model.piece(tokens[0]):
            found.add(tokens[0])
    model._visible_markers = frozenset(found)
    return model._visible_markers


def is_bare_json_syntax(syntax: CallSyntax | None) -> bool:
    return syntax is LLAMA3

