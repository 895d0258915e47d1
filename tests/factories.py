from __future__ import annotations

import factory
from django.utils import timezone

from accounts.models import User
from flows.models import Contact, ConversionFlow, FieldType, FlowField
from workspaces.models import Membership, Role, Workspace

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    # Verified, as every account that reaches a workspace is: UserFactory(email_verified_at=None) for one that is not.
    email_verified_at = factory.LazyFunction(timezone.now)

    @classmethod
    def _create(cls, model_class: type[User], *args: object, **kwargs: object) -> User:
        password = kwargs.pop("password", PASSWORD)
        return model_class.objects.create_user(*args, password=password, **kwargs)


class WorkspaceFactory(factory.django.DjangoModelFactory[Workspace]):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Workspace {n}")
    slug = factory.Sequence(lambda n: f"workspace-{n}")


class MembershipFactory(factory.django.DjangoModelFactory[Membership]):
    class Meta:
        model = Membership

    workspace = factory.SubFactory(WorkspaceFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.ADMIN


class FlowFactory(factory.django.DjangoModelFactory[ConversionFlow]):
    class Meta:
        model = ConversionFlow

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Flow {n}")


class FlowFieldFactory(factory.django.DjangoModelFactory[FlowField]):
    class Meta:
        model = FlowField

    flow = factory.SubFactory(FlowFactory)
    kind = FlowField.Kind.CUSTOM
    key = factory.Sequence(lambda n: f"field_{n}")
    label = factory.LazyAttribute(lambda o: o.key.replace("_", " ").capitalize())
    field_type = FieldType.TEXT
    position = factory.Sequence(lambda n: n)


class ContactFactory(factory.django.DjangoModelFactory[Contact]):
    class Meta:
        model = Contact

    flow = factory.SubFactory(FlowFactory)
    workspace = factory.LazyAttribute(lambda o: o.flow.workspace)
    email = factory.Sequence(lambda n: f"contact{n}@example.com")
    data = factory.LazyAttribute(lambda o: {"email": o.email})
    source = Contact.Source.FORM


def make_flow(workspace: Workspace, *, name: str = "Signup", extra: list[dict] | None = None) -> ConversionFlow:
    """A flow with a required email, a first name and whatever ``extra`` fields are given."""
    flow = FlowFactory(workspace=workspace, name=name)
    FlowFieldFactory(flow=flow, kind="standard", key="email", label="Email", field_type=FieldType.EMAIL, required=True)
    FlowFieldFactory(flow=flow, kind="standard", key="first_name", label="First name", field_type=FieldType.TEXT)
    for spec in extra or []:
        FlowFieldFactory(flow=flow, **spec)
    return flow
