"""`deploy-console completion SHELL` (bash, zsh, fish) and the hidden `__complete` the scripts
call on each Tab: commands, flags, and project, cluster and release names from the config and
the store (completion_names), never from AWS.

The scripts hold no command list of their own: they hand the words typed so far to
`deploy-console __complete SHELL -- WORD...`, which walks this very argparse parser. Its
answer: a first line `names` or `files` (complete a path), then one candidate a line,
`value<TAB>description` for zsh and fish.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from functools import cached_property

from console.safe_text import harmless, has_controls
from screens import PROG
from screens.cli.command_line import PATH_OPTIONS, Commands, error_line
from screens.cli.completion_names import Choice, NameSource

COMPLETE = "__complete"
"""The hidden helper command the scripts call (not in --help, not a subcommand)."""
SHELLS = ("bash", "zsh", "fish")
NAMES, FILES = "names", "files"
DESCRIPTION_WIDTH = 60
# Options given once that may come again (`status --project a --project b`).
REPEATABLE = (argparse._AppendAction, argparse._CountAction)

_FUNCTION = "_" + PROG.replace("-", "_")

BASH = f"""\
# {PROG} completion for bash. In ~/.bashrc: source <({PROG} completion bash)
{_FUNCTION}() {{
    local line kind=
    local -a found=()
    COMPREPLY=()
    while IFS= read -r line; do
        if [[ -z $kind ]]; then kind=$line; else found+=("$line"); fi
    done < <(command {PROG} {COMPLETE} bash -- "${{COMP_WORDS[@]:1:COMP_CWORD}}" 2>/dev/null)
    if [[ $kind == {FILES} ]]; then
        compopt -o filenames 2>/dev/null
        while IFS= read -r line; do
            COMPREPLY+=("$line")
        done < <(compgen -f -- "${{COMP_WORDS[COMP_CWORD]}}")
    else
        COMPREPLY=("${{found[@]}}")
    fi
}}
complete -F {_FUNCTION} {PROG}
"""

ZSH = f"""\
#compdef {PROG}
# {PROG} completion for zsh. In ~/.zshrc, after compinit: source <({PROG} completion zsh)
# (or save it as _{PROG} in a folder of $fpath).
{_FUNCTION}() {{
    local line value description
    local -a found described
    found=("${{(@f)$(command {PROG} {COMPLETE} zsh -- "${{(@)words[2,CURRENT]}}" 2>/dev/null)}}")
    if [[ ${{found[1]}} == {FILES} ]]; then
        _files
        return
    fi
    for line in "${{(@)found[2,-1]}}"; do
        [[ -n $line ]] || continue
        value=${{line%%$'\\t'*}}
        description=${{line#*$'\\t'}}
        if [[ $line == *$'\\t'* && -n $description ]]; then
            described+=("${{value//:/\\\\:}}:$description")
        else
            described+=("${{value//:/\\\\:}}")
        fi
    done
    (( ${{#described}} )) && _describe -t values {PROG} described
}}
if [[ $funcstack[1] == {_FUNCTION} ]]; then
    {_FUNCTION} "$@"
elif (( $+functions[compdef] )); then
    compdef {_FUNCTION} {PROG}
else
    print -u2 "{PROG} completion: run compinit first (autoload -Uz compinit && compinit)"
fi
"""

FISH = f"""\
# {PROG} completion for fish. In ~/.config/fish/config.fish: {PROG} completion fish | source
# (or save it as ~/.config/fish/completions/{PROG}.fish).
function {_FUNCTION}
    set -l current (commandline -ct)
    set -l words (commandline -opc)[2..-1]
    set -l found (command {PROG} {COMPLETE} fish -- $words "$current" 2>/dev/null)
    if test "$found[1]" = {FILES}
        __fish_complete_path "$current"
        return
    end
    for line in $found[2..-1]
        echo $line
    end
end
complete -c {PROG} -f -a '({_FUNCTION})'
"""

SCRIPTS = {"bash": BASH, "zsh": ZSH, "fish": FISH}

HOW = f"""\
bash: source <({PROG} completion bash)     (in ~/.bashrc)
zsh:  source <({PROG} completion zsh)      (in ~/.zshrc, after compinit)
fish: {PROG} completion fish | source      (in ~/.config/fish/config.fish)"""


def register(commands: Commands) -> None:
    completion = commands.add(
        "completion",
        "print a shell completion script (bash, zsh or fish)",
        completion_command,
        common=False,
    )
    completion.description = (
        "Print the completion script of SHELL: it completes commands, options, and project, "
        "cluster and release names (from the config and the store, never from AWS)."
    )
    completion.epilog = HOW
    completion.formatter_class = argparse.RawDescriptionHelpFormatter
    completion.add_argument("shell", metavar="SHELL", choices=SHELLS, help="bash, zsh or fish")


def completion_command(args: argparse.Namespace) -> int:
    sys.stdout.write(SCRIPTS[args.shell])
    return 0


def complete_command(top: argparse.ArgumentParser, argv: list[str]) -> int:
    """`__complete SHELL -- WORD...`: the candidates for the last WORD (the one being typed),
    on stdout. Never a traceback: a failure is one line on stderr (the scripts drop it)."""
    if len(argv) < 2 or argv[0] not in SHELLS or argv[1] != "--":
        print(error_line(f"usage: {PROG} {COMPLETE} {{bash,zsh,fish}} -- WORD..."), file=sys.stderr)
        return 2
    try:
        reply = complete(top, argv[2:])
    except Exception as problem:  # a bug must not print a traceback under the prompt
        print(error_line(f"completion failed: {harmless(str(problem))}"), file=sys.stderr)
        return 1
    lines = [reply.kind]
    for value, description in reply.choices:
        if argv[0] == "bash" or not description:
            lines.append(value)
        else:
            lines.append(f"{value}\t{_one_line(description)}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


@dataclass
class Reply:
    kind: str
    choices: list[Choice] = field(default_factory=list)


def complete(top: argparse.ArgumentParser, words: list[str]) -> Reply:
    """What may come as the last of `words` (the words after the program's name)."""
    *typed, current = words or [""]
    line = _Line(top)
    for word in typed:
        line.take(word)
    reply = line.reply(current)
    choices = list(
        dict.fromkeys(
            (value, description)
            for value, description in reply.choices
            if value.startswith(current) and value and not has_controls(value)
        )
    )
    return Reply(reply.kind, choices)


def _one_line(text: str) -> str:
    text = " ".join(harmless(text).split())
    return text if len(text) <= DESCRIPTION_WIDTH else text[: DESCRIPTION_WIDTH - 1] + "…"


@dataclass
class _Line:
    """The command line read so far: which (sub)parser, which of its positionals come next,
    an option waiting for its value, and the values seen (a project names its releases)."""

    parser: argparse.ArgumentParser
    index: int = 0
    waiting: argparse.Action | None = None
    after_dashes: bool = False
    given: set[argparse.Action] = field(default_factory=set)
    values: dict[str, str] = field(default_factory=dict)

    @property
    def positionals(self) -> list[argparse.Action]:
        return [action for action in self.parser._actions if not action.option_strings]

    def take(self, word: str) -> None:
        if self.waiting is not None and word == "=":
            return  # bash splits `--config=PATH` into three words (COMP_WORDBREAKS)
        if self.waiting is not None:
            self.values[self.waiting.dest] = word
            self.waiting = None
        elif word == "--" and not self.after_dashes:
            self.after_dashes = True
        elif word.startswith("-") and word != "-" and not self.after_dashes:
            self._take_option(word)
        else:
            self._take_positional(word)

    def _take_option(self, word: str) -> None:
        name, equals, value = word.partition("=")
        action = self._option(name)
        if action is None:
            return
        self.given.add(action)
        if action.nargs == 0:
            return
        if equals:
            self.values[action.dest] = value
        else:
            self.waiting = action

    def _take_positional(self, word: str) -> None:
        positionals = self.positionals
        if self.index >= len(positionals):
            return
        action = positionals[self.index]
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(word)
            if isinstance(chosen, argparse.ArgumentParser):
                self.parser, self.index, self.given = chosen, 0, set()
                self.after_dashes = False
            return
        self.values[action.dest] = word
        if action.nargs not in ("*", "+", argparse.REMAINDER):
            self.index += 1

    def _option(self, name: str) -> argparse.Action | None:
        options = self.parser._option_string_actions
        if name in options:
            return options[name]
        # argparse takes a unique prefix of a long option (--proj for --project).
        matches = {options[o] for o in options if name.startswith("--") and o.startswith(name)}
        return matches.pop() if len(matches) == 1 else None

    def reply(self, current: str) -> Reply:
        if self.waiting is not None:
            return self._values(self.waiting)
        if current.startswith("-") and not self.after_dashes:
            return Reply(NAMES, self._options(current))
        positionals = self.positionals
        if self.index < len(positionals):
            action = positionals[self.index]
            if isinstance(action, argparse._SubParsersAction):
                return Reply(NAMES, _subcommands(action))
            return self._values(action)
        # Nothing left to name: the options, for a user who pressed Tab to see them.
        return Reply(NAMES, self._options("--"))

    def _options(self, current: str) -> list[Choice]:
        long = current == "-" or current.startswith("--")
        found: list[Choice] = []
        for action in self.parser._actions:
            if action.help == argparse.SUPPRESS or not action.option_strings:
                continue
            if action in self.given and not isinstance(action, REPEATABLE):
                continue
            for option in action.option_strings:
                if option.startswith("--") == long or len(action.option_strings) == 1:
                    found.append((option, action.help or ""))
        return found

    @cached_property
    def _names(self) -> NameSource:
        return NameSource(self.values.get("config"), self.values.get("store"))

    def _values(self, action: argparse.Action) -> Reply:
        if action.dest in PATH_OPTIONS or action.metavar == "PATH":
            return Reply(FILES)
        if action.choices is not None:
            return Reply(NAMES, [(str(choice), "") for choice in action.choices])
        project = self.values.get("project")
        names = {
            "project": lambda: self._names.projects(),
            "cluster": lambda: self._names.clusters(project),
            "release": lambda: self._names.releases(project),
            "deploy_id": lambda: self._names.deploy_ids(),
            "channel": lambda: self._names.channels(),
        }.get(action.dest)
        return Reply(NAMES, names() if names else [])


def _subcommands(action: argparse._SubParsersAction[argparse.ArgumentParser]) -> list[Choice]:
    """The subcommands --help lists (each with its help line)."""
    return [
        (choice.dest, choice.help or "")
        for choice in action._choices_actions
        if choice.help != argparse.SUPPRESS
    ]
