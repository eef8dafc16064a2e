"""Consensus: forums and their members, rounds, positions with their history, consensus calls.

Revision ID: 43bf39375898
Revises: 930c9b169a3d
Create Date: 2026-11-26 01:30:49.877911

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '43bf39375898'
down_revision = '930c9b169a3d'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('forums',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=80), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.Enum('plenary', 'workshop', 'advisory', 'scientific_panel', 'open_consultation', name='forumkind', native_enum=False, length=30), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('is_open', sa.Boolean(), nullable=False),
    sa.Column('working_group_id', sa.Integer(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_forums_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['working_group_id'], ['working_groups.id'], name=op.f('fk_forums_working_group_id_working_groups'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forums')),
    sa.UniqueConstraint('slug', name=op.f('uq_forums_slug'))
    )
    op.create_table('forum_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('forum_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['forum_id'], ['forums.id'], name=op.f('fk_forum_members_forum_id_forums'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_forum_members_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forum_members')),
    sa.UniqueConstraint('forum_id', 'user_id', name=op.f('uq_forum_members_forum_id_user_id'))
    )
    with op.batch_alter_table('forum_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_forum_members_user_id'), ['user_id'], unique=False)

    op.create_table('consensus_rounds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('forum_id', sa.Integer(), nullable=False),
    sa.Column('code_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('opens_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closes_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('clause_keys', sa.JSON(), nullable=True),
    sa.Column('eligibility', sa.Enum('members', 'registered', name='eligibility', native_enum=False, length=20), nullable=False),
    sa.Column('counting', sa.Enum('person', 'organisation', name='counting', native_enum=False, length=20), nullable=False),
    sa.Column('consensus_support', sa.Double(), nullable=False),
    sa.Column('rough_support', sa.Double(), nullable=False),
    sa.Column('category_floor', sa.Double(), nullable=False),
    sa.Column('min_participants', sa.Integer(), nullable=False),
    sa.Column('divergence', sa.Double(), nullable=False),
    sa.Column('min_category_answers', sa.Integer(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['code_id'], ['codes.id'], name=op.f('fk_consensus_rounds_code_id_codes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_consensus_rounds_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['forum_id'], ['forums.id'], name=op.f('fk_consensus_rounds_forum_id_forums'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], name=op.f('fk_consensus_rounds_version_id_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consensus_rounds'))
    )
    with op.batch_alter_table('consensus_rounds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consensus_rounds_code_id'), ['code_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consensus_rounds_forum_id'), ['forum_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consensus_rounds_version_id'), ['version_id'], unique=False)

    op.create_table('consensus_calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('clause_key', sa.String(length=120), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('level', sa.Enum('consensus', 'rough_consensus', 'contested', 'insufficient_participation', name='level', native_enum=False, length=30), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=False),
    sa.Column('dissent', sa.Text(), nullable=False),
    sa.Column('objections', sa.JSON(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_consensus_calls_author_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['round_id'], ['consensus_rounds.id'], name=op.f('fk_consensus_calls_round_id_consensus_rounds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consensus_calls')),
    sa.UniqueConstraint('round_id', 'clause_key', 'revision', name=op.f('uq_consensus_calls_round_id_clause_key_revision'))
    )
    with op.batch_alter_table('consensus_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consensus_calls_round_id'), ['round_id'], unique=False)

    op.create_table('positions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('clause_key', sa.String(length=120), nullable=False),
    sa.Column('participant_key', sa.String(length=220), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('category', sa.Enum('gpai_provider', 'downstream_provider', 'academia', 'civil_society', 'rights_holder', 'industry_association', 'independent_expert', 'public_authority', 'other', name='stakeholdercategory', native_enum=False, length=40), nullable=False),
    sa.Column('organisation', sa.String(length=200), nullable=True),
    sa.Column('stance', sa.Enum('support', 'support_with_changes', 'abstain', 'oppose', name='stance', native_enum=False, length=30), nullable=False),
    sa.Column('serious_objection', sa.Boolean(), nullable=False),
    sa.Column('rationale', sa.Text(), nullable=False),
    sa.Column('comment_id', sa.Integer(), nullable=True),
    sa.Column('publish', sa.Boolean(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['comment_id'], ['comments.id'], name=op.f('fk_positions_comment_id_comments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['round_id'], ['consensus_rounds.id'], name=op.f('fk_positions_round_id_consensus_rounds'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_positions_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_positions')),
    sa.UniqueConstraint('round_id', 'clause_key', 'participant_key', name=op.f('uq_positions_round_id_clause_key_participant_key'))
    )
    with op.batch_alter_table('positions', schema=None) as batch_op:
        batch_op.create_index('ix_positions_tally', ['round_id', 'clause_key', 'category', 'stance', 'serious_objection'], unique=False)
        batch_op.create_index('ix_positions_participants', ['round_id', 'category', 'participant_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_positions_user_id'), ['user_id'], unique=False)

    op.create_table('position_revisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('position_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('stance', sa.Enum('support', 'support_with_changes', 'abstain', 'oppose', name='stance', native_enum=False, length=30), nullable=False),
    sa.Column('serious_objection', sa.Boolean(), nullable=False),
    sa.Column('rationale', sa.Text(), nullable=False),
    sa.Column('comment_id', sa.Integer(), nullable=True),
    sa.Column('publish', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['position_id'], ['positions.id'], name=op.f('fk_position_revisions_position_id_positions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_position_revisions_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_position_revisions')),
    sa.UniqueConstraint('position_id', 'revision', name=op.f('uq_position_revisions_position_id_revision'))
    )


def downgrade():
    op.drop_table('position_revisions')
    with op.batch_alter_table('positions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_positions_user_id'))
        batch_op.drop_index('ix_positions_tally')
        batch_op.drop_index('ix_positions_participants')

    op.drop_table('positions')
    with op.batch_alter_table('consensus_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consensus_calls_round_id'))

    op.drop_table('consensus_calls')
    with op.batch_alter_table('consensus_rounds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consensus_rounds_version_id'))
        batch_op.drop_index(batch_op.f('ix_consensus_rounds_forum_id'))
        batch_op.drop_index(batch_op.f('ix_consensus_rounds_code_id'))

    op.drop_table('consensus_rounds')
    with op.batch_alter_table('forum_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_forum_members_user_id'))

    op.drop_table('forum_members')
    op.drop_table('forums')
