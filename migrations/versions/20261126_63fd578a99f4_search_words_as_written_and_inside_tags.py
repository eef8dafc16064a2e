"""Search on PostgreSQL: also index every word as written, for prefixes, and the words inside things that
look like HTML tags.

Prefixes are matched against the words as written ('simple', positions stripped to keep the vector small):
'mitigat':* cannot meet the English stem 'mitig' of "mitigate". PostgreSQL's parser reads `<meta
content="noai">` as a tag and indexes none of its words; a \\x01 after every '<' keeps it from seeing tags
(the search backend does the same for ts_headline). SQLite has no tsvector: nothing to do there.

Revision ID: 63fd578a99f4
Revises: 43bf39375898
Create Date: 2026-11-26 01:40:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '63fd578a99f4'
down_revision = '43bf39375898'
branch_labels = None
depends_on = None

CONFIG = """
    CASE language
        WHEN 'en' THEN 'english'::regconfig WHEN 'sv' THEN 'swedish'::regconfig
        WHEN 'de' THEN 'german'::regconfig WHEN 'fr' THEN 'french'::regconfig
        WHEN 'es' THEN 'spanish'::regconfig WHEN 'it' THEN 'italian'::regconfig
        WHEN 'nl' THEN 'dutch'::regconfig WHEN 'fi' THEN 'finnish'::regconfig
        WHEN 'da' THEN 'danish'::regconfig ELSE 'simple'::regconfig
    END
"""
OLD_TEXT = "coalesce(title, '') || ' ' || coalesce(content, '')"
NEW_TEXT = f"replace({OLD_TEXT}, '<', '<' || chr(1))"
OLD_VECTOR = f"to_tsvector({CONFIG}, {OLD_TEXT})"
NEW_VECTOR = f"to_tsvector({CONFIG}, {NEW_TEXT}) || strip(to_tsvector('simple', {NEW_TEXT}))"


def _replace_vector(expression: str) -> None:
    # A generated column's expression cannot be altered (before PostgreSQL 17): drop it and add it again.
    op.execute("DROP INDEX IF EXISTS ix_search_documents_tsv")
    op.execute("ALTER TABLE search_documents DROP COLUMN IF EXISTS tsv")
    op.execute(f"ALTER TABLE search_documents ADD COLUMN tsv tsvector GENERATED ALWAYS AS ({expression}) STORED")
    op.execute("CREATE INDEX ix_search_documents_tsv ON search_documents USING gin (tsv)")


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        _replace_vector(NEW_VECTOR)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        _replace_vector(OLD_VECTOR)
