"""The man-page comment-block parser, field by field, on fixture blocks of every kind."""

import json

from sciknow.ingest.base import SkipLog
from sciknow.ingest.manpage import parse_manpages, render, seealso_names

FUNCTION = """\
#include <petsc/private/widgetimpl.h>

/*@
  WidgetSetTolerances - Sets the relative and absolute tolerances that a
  `Widget` uses to decide when to stop.

  Logically Collective

  Input Parameters:
+ widget - the widget context
. rtol   - the relative tolerance, a decrease of the residual
           norm by this factor
- atol   - the absolute tolerance

  Output Parameter:
. changed - whether any tolerance changed

  Options Database Keys:
+ -widget_rtol <rtol> - relative tolerance
- -widget_atol <atol> - absolute tolerance,
                        used with the relative one

  Level: intermediate

  Notes:
  Use `PETSC_DETERMINE` to keep a value.

  For example
.vb
    WidgetSetTolerances(w, 1e-6, PETSC_DETERMINE, &changed);

    Level: not a level line
.ve

  Developer Note:
  The tolerances are stored in the widget.

  Fortran Note:
  Pass `PETSC_NULL_INTEGER` for `changed`.

.seealso: [](ch_widget), `WidgetGetTolerances()`, `WidgetSolve()`,
          `Widget`
@*/
PetscErrorCode WidgetSetTolerances(Widget widget, PetscReal rtol,
                                   PetscReal atol, PetscBool *changed)
{
  PetscFunctionBegin;
  PetscFunctionReturn(PETSC_SUCCESS);
}
"""


def parse(text: str) -> tuple[list, SkipLog]:
    skips = SkipLog()
    return parse_manpages(text, "src/widget.c", skips), skips


def line_of(text: str, needle: str, start: int = 0) -> int:
    """1-based number of the first line at or after `start` that contains `needle`."""
    lines = text.split("\n")
    return next(i + 1 for i in range(start, len(lines)) if needle in lines[i])


def test_function_block_fields():
    (page,), skips = parse(FUNCTION)
    assert not skips.skipped
    assert (page.name, page.kind, page.marker) == ("WidgetSetTolerances", "function", "@")
    assert page.summary == (
        "Sets the relative and absolute tolerances that a `Widget` uses to decide when to stop."
    )
    assert page.collective == "Logically Collective"
    assert page.input_parameters == [
        ("widget", "the widget context"),
        ("rtol", "the relative tolerance, a decrease of the residual norm by this factor"),
        ("atol", "the absolute tolerance"),
    ]
    assert page.output_parameters == [("changed", "whether any tolerance changed")]
    assert page.options == {
        "-widget_rtol <rtol>": "relative tolerance",
        "-widget_atol <atol>": "absolute tolerance, used with the relative one",
    }
    assert page.level == "intermediate"
    assert page.notes.startswith("Use `PETSC_DETERMINE` to keep a value.\n\nFor example\n```")
    assert "  Level: not a level line\n```" in page.notes  # verbatim text is kept as is
    assert page.developer_notes == "The tolerances are stored in the widget."
    assert page.fortran_notes == "Pass `PETSC_NULL_INTEGER` for `changed`."
    assert page.seealso == ["WidgetGetTolerances", "WidgetSolve", "Widget"]
    assert page.synopsis == (
        "PetscErrorCode WidgetSetTolerances(Widget widget, PetscReal rtol,\n"
        "                                   PetscReal atol, PetscBool *changed)"
    )
    assert page.start_line == line_of(FUNCTION, "/*@")
    assert page.end_line == line_of(FUNCTION, "PetscReal atol, PetscBool")
    assert json.loads(json.dumps(page.to_dict()))["name"] == "WidgetSetTolerances"


def test_render_is_readable():
    (page,), _ = parse(FUNCTION)
    text = render(page)
    assert text.startswith("WidgetSetTolerances – Sets the relative and absolute tolerances")
    for part in (
        "Synopsis:\nPetscErrorCode WidgetSetTolerances(",
        "Logically Collective",
        "Input Parameters:\n  widget - the widget context",
        "Output Parameters:\n  changed - whether any tolerance changed",
        "Options Database Keys:\n  -widget_rtol <rtol> - relative tolerance",
        "Notes:\nUse `PETSC_DETERMINE`",
        "Developer Notes:\nThe tolerances",
        "Fortran Notes:\nPass",
        "Level: intermediate",
        "See also: WidgetGetTolerances, WidgetSolve, Widget",
    ):
        assert part in text
    assert text.index("Options Database Keys") < text.index("Notes:") < text.index("Level:")


MACRO_AND_TYPES = """\
/*MC
   WIDGETFAST - WIDGETFAST = "fast" - A widget implementation that
   trades accuracy for speed.

   This type is what `WidgetCreate()` gives by default
   on a single process.

   Options Database Key:
. -widget_type fast - selects this type during WidgetSetFromOptions()

   Level: beginner

   Note:
   It never allocates.

.seealso: WidgetCreate(), WidgetType, WIDGETSLOW
M*/

/*MC
   WidgetCheck - Checks a widget and returns from the calling function on failure

   Synopsis:
   #include <petscwidget.h>
   PetscErrorCode WidgetCheck(Widget w)

   Not Collective; No Fortran Support

   Input Parameter:
.  w - the widget

   Level: developer

.seealso: `WidgetSetTolerances()`
M*/
#define WidgetCheck(w) do { } while (0)

/*S
   Widget - Abstract object that holds a widget

   Level: beginner

   Notes:
   Create one with `WidgetCreate()`.

.seealso: `WidgetCreate()`, `WidgetDestroy()`
S*/
typedef struct _p_Widget *Widget;

/*E
   WidgetMode - How a widget runs

   Values:
+  `WIDGET_MODE_SLOW` - carefully
-  `WIDGET_MODE_FAST` - quickly

   Level: intermediate

.seealso: `WidgetSetMode()`
E*/
typedef enum { WIDGET_MODE_SLOW, WIDGET_MODE_FAST } WidgetMode;

/*J
   WidgetType - String with the name of a widget implementation

   Level: beginner

.seealso: `WidgetSetType()`, `Widget`
J*/
typedef const char *WidgetType;

/*@C
   WidgetView - Views a widget

   Collective

   Input Parameters:
+  w - the widget
-  viewer - the viewer

   Level: beginner
@*/
PetscErrorCode WidgetView(Widget w, PetscViewer viewer) { return PETSC_SUCCESS; }
"""


def pages_by_name(text: str) -> dict:
    pages, skips = parse(text)
    assert not skips.skipped
    return {page.name: page for page in pages}


def test_mc_block_with_type_name_and_description():
    page = pages_by_name(MACRO_AND_TYPES)["WIDGETFAST"]
    assert (page.kind, page.marker) == ("macro", "MC")
    assert page.summary == (
        'WIDGETFAST = "fast" - A widget implementation that trades accuracy for speed.'
    )
    assert page.description == (
        "This type is what `WidgetCreate()` gives by default\non a single process."
    )
    assert page.options == {"-widget_type fast": "selects this type during WidgetSetFromOptions()"}
    assert page.level == "beginner"
    assert page.notes == "It never allocates."
    assert page.seealso == ["WidgetCreate", "WidgetType", "WIDGETSLOW"]
    assert page.synopsis == ""
    assert page.start_line == 1
    assert page.end_line == line_of(MACRO_AND_TYPES, "M*/")


def test_mc_block_with_synopsis_section():
    page = pages_by_name(MACRO_AND_TYPES)["WidgetCheck"]
    assert page.synopsis == "#include <petscwidget.h>\nPetscErrorCode WidgetCheck(Widget w)"
    assert page.collective == "Not Collective; No Fortran Support"
    assert page.input_parameters == [("w", "the widget")]
    assert page.level == "developer"
    assert page.seealso == ["WidgetSetTolerances"]


def test_struct_enum_and_string_type_blocks():
    pages = pages_by_name(MACRO_AND_TYPES)
    struct, enum, string = pages["Widget"], pages["WidgetMode"], pages["WidgetType"]
    assert (struct.kind, struct.marker) == ("struct", "S")
    assert struct.summary == "Abstract object that holds a widget"
    assert struct.notes == "Create one with `WidgetCreate()`."
    assert struct.seealso == ["WidgetCreate", "WidgetDestroy"]
    assert (enum.kind, enum.level) == ("enum", "intermediate")
    assert enum.sections["Values"] == (
        "+  `WIDGET_MODE_SLOW` - carefully\n-  `WIDGET_MODE_FAST` - quickly"
    )
    assert "Values:\n+  `WIDGET_MODE_SLOW`" in render(enum)
    assert (string.kind, string.summary) == (
        "type",
        "String with the name of a widget implementation",
    )
    assert string.seealso == ["WidgetSetType", "Widget"]
    start = line_of(MACRO_AND_TYPES, "/*J")
    assert (string.start_line, string.end_line) == (start, line_of(MACRO_AND_TYPES, "J*/"))


def test_variant_function_marker_and_one_line_definition():
    page = pages_by_name(MACRO_AND_TYPES)["WidgetView"]
    assert (page.kind, page.marker, page.collective) == ("function", "@C", "Collective")
    assert page.input_parameters == [("w", "the widget"), ("viewer", "the viewer")]
    assert page.synopsis == "PetscErrorCode WidgetView(Widget w, PetscViewer viewer)"
    assert page.end_line == line_of(MACRO_AND_TYPES, "PetscErrorCode WidgetView(")


BROKEN = """\
/*@
  WidgetLost - This block is never closed

  Level: beginner

/*E
  WidgetColor - Colors

  Level: beginner
E*/

/*E is the energy, in a plain comment that is not a man page */

/*@
  not a name line at all
@*/

/*S
  WidgetTail - Still parsed after the broken blocks

  Level: advanced
S*/

/*@
  WidgetEnd - Unterminated at the end of the file
"""


def test_unterminated_and_nameless_blocks_are_skipped_and_the_rest_parsed():
    pages, skips = parse(BROKEN)
    assert [p.name for p in pages] == ["WidgetColor", "WidgetTail"]
    nameless, last = line_of(BROKEN, "not a name") - 1, line_of(BROKEN, "WidgetEnd") - 1
    assert {s.where for s in skips.skipped} == {"src/widget.c"}
    assert [s.reason for s in skips.skipped] == [
        "unterminated /*@ man-page block at line 1",
        f"/*@ block at line {nameless} has no 'Name - summary' line",
        f"unterminated /*@ man-page block at line {last}",
    ]
    assert pages[1].level == "advanced"


def test_seealso_names_old_and_new_styles():
    assert seealso_names("[](ch_ksp), `KSPGetTolerances()`, `KSPConvergedDefault()`") == [
        "KSPGetTolerances",
        "KSPConvergedDefault",
    ]
    assert seealso_names(" KSPSolve(), KSPCreate(),\n KSP") == ["KSPSolve", "KSPCreate", "KSP"]
    assert seealso_names("`KSP`, `KSP`, `MatSetOptions`(,`MAT_X`)") == [
        "KSP",
        "MatSetOptions",
        "MAT_X",
    ]
