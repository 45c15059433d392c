"""Views for clinical notes, process notes and the clinic's note templates.

One module each; urls.py names the views through this package, which re-exports them.
"""

from kapclinic.notes.views.note_templates import (
    builtin_visibility,
    template_edit,
    template_reinstate,
    template_retire,
    templates,
)
from kapclinic.notes.views.notes import (
    addendum,
    autosave,
    detail,
    edit_note,
    index,
    new,
    new_editor_token,
    patient_notes,
    sign,
    thread,
)
from kapclinic.notes.views.process_notes import (
    process_edit,
    process_list,
    process_revisions,
    process_share,
)

__all__ = [
    "addendum",
    "autosave",
    "builtin_visibility",
    "detail",
    "edit_note",
    "index",
    "new",
    "new_editor_token",
    "patient_notes",
    "process_edit",
    "process_list",
    "process_revisions",
    "process_share",
    "sign",
    "template_edit",
    "template_reinstate",
    "template_retire",
    "templates",
    "thread",
]
