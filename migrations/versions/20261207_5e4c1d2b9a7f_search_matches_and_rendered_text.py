"""Search: the words and filters of each document in a narrow table of their own; text indexed as rendered.

PostgreSQL reads every matching row of a search to rank it and to count it in the total and the facets. The
words now live in `search_matches` (the tsvector and the filter columns, about half the width of a
`search_documents` row, which keeps the text shown in results), so a common word reads half the pages. The
tsvector is no longer a generated column: the search backend computes it when it indexes a document.

Documents are now indexed as a reader sees them (the rendered text of clauses and comments, not their
Markdown). On PostgreSQL the existing words are copied over, so search keeps working, and every indexed
source is queued, so the indexer replaces each document with its rendered text within a minute or so of the
next start (or run `flask search reindex`). On SQLite nothing is indexed in the database: the whoosh index
on disk notices its older text format and is rebuilt when the server starts.

Revision ID: 5e4c1d2b9a7f
Revises: c7c00ac80c33
Create Date: 2026-12-07 00:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5e4c1d2b9a7f'
down_revision = 'c7c00ac80c33'
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
TEXT = "replace(coalesce(title, '') || ' ' || coalesce(content, ''), '<', '<' || chr(1))"
VECTOR = f"to_tsvector({CONFIG}, {TEXT}) || strip(to_tsvector('simple', {TEXT}))"
COLUMNS = "id, language, audience, kind, code, version, clause, category, comment_type, disposition, date"


def upgrade():
    op.create_table('search_matches',
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('language', sa.String(length=10), nullable=False),
    sa.Column('audience', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('code', sa.String(length=80), nullable=False),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('clause', sa.String(length=120), nullable=True),
    sa.Column('category', sa.String(length=40), nullable=True),
    sa.Column('comment_type', sa.String(length=20), nullable=True),
    sa.Column('disposition', sa.String(length=30), nullable=True),
    sa.Column('date', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['id'], ['search_documents.id'], name=op.f('fk_search_matches_id_search_documents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_search_matches'))
    )
    with op.batch_alter_table('search_matches', schema=None) as batch_op:
        batch_op.create_index('ix_search_matches_language', ['language'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE search_matches ADD COLUMN tsv tsvector NOT NULL")
        # The words as they are now (from the generated column), so search works while the queue is drained.
        op.execute(f"INSERT INTO search_matches ({COLUMNS}, tsv) SELECT {COLUMNS}, tsv FROM search_documents")
        op.execute("DROP INDEX IF EXISTS ix_search_documents_tsv")
        op.execute("ALTER TABLE search_documents DROP COLUMN IF EXISTS tsv")
        # The GIN index keeps the name it had, which the schema comparison knows to leave out.
        op.execute("CREATE INDEX ix_search_documents_tsv ON search_matches USING gin (tsv)")
        op.execute(
            "INSERT INTO search_queue (source, created_at) SELECT DISTINCT source, now() FROM search_documents"
        )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_search_documents_tsv")
        op.execute(f"ALTER TABLE search_documents ADD COLUMN tsv tsvector GENERATED ALWAYS AS ({VECTOR}) STORED")
        op.execute("CREATE INDEX ix_search_documents_tsv ON search_documents USING gin (tsv)")
    with op.batch_alter_table('search_matches', schema=None) as batch_op:
        batch_op.drop_index('ix_search_matches_language')

    op.drop_table('search_matches')
