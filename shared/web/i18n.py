"""English and French texts of every page (the source document is French).

Control labels are the source document's, exactly, in both languages (DESIGN.md §5):
Continue, Associate My Account, Office 365 user, New User, Save, Request to Join,
Approve & Add, Enable, Disable.
"""

from __future__ import annotations

LANGUAGES = ("en", "fr")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "app.name": "Zoho CRM for Office 365",
        "lang.switch": "Français",
        "nav.signout": "Sign out",
        "accounts.title": "Zoho CRM Accounts",
        "accounts.intro": "You are signed in to Office 365 as {email}. Accept the terms and conditions, then click Continue to go to your CRM account.",
        "accounts.terms": "I accept the terms and conditions of Zoho CRM.",
        "accounts.terms.link": "Read the terms and conditions",
        "accounts.continue": "Continue",
        "accounts.associate": "Associate My Account",
        "accounts.associate.help": "Already have a CRM account with a different e-mail address? Sign in with it and link it instead.",
        "accounts.terms.required": "Please accept the terms and conditions to continue.",
        "install.admin_required.title": "An administrator must install the app first",
        "install.admin_required.body": "Zoho CRM has not been installed for your organisation ({tenant}) yet. Only an Office 365 administrator can install it. Please ask your administrator to open Zoho CRM from the Office 365 app launcher and install it; then you can use it once they approve you.",
        "install.consent_refused.title": "The app was not installed",
        "install.consent_refused.body": "Microsoft did not grant the permissions the app needs ({reason}). Nothing was installed. An Office 365 administrator can try again from the app launcher.",
        "install.consent_wrong_tenant.body": "The permissions were granted for a different organisation than the one you signed in with. Nothing was installed.",
        "signin.failed.title": "Sign-in could not be completed",
        "signin.failed.body": "{reason} Nothing was changed. Please open the app again from the Office 365 app launcher.",
        "signin.replayed.body": "This sign-in answer does not belong to a sign-in started in this browser, or it was already used. Nothing was changed. Please open the app again from the Office 365 app launcher.",
        "signin.expired.title": "Your session has expired",
        "signin.expired.body": "For your security, sessions end after a while. Nothing was changed. Please open the app again from the Office 365 app launcher.",
        "csrf.title": "This form could not be accepted",
        "csrf.body": "The form was missing its security token or came from another site. Nothing was changed. Please go back, reload the page and try again.",
        "associate.taken.title": "This CRM account is already linked",
        "associate.taken.body": "The CRM account {email} is already linked to another Microsoft account. Nothing was changed.",
        "associate.already.body": "Your Microsoft account is already linked to the CRM account {email}. Nothing was changed.",
        "associate.failed.title": "Your CRM account could not be linked",
        "associate.failed.body": "{reason} Nothing was changed.",
        "join.title": "Your organisation already has a CRM account",
        "join.body": "{org} uses Zoho CRM. You are not a member yet: ask to join and the people who manage users will be told by e-mail.",
        "join.request": "Request to Join",
        "signedout.title": "You are signed out",
        "signedout.body": "You can close this window, or open the app again from the Office 365 app launcher.",
        "error.title": "Something went wrong",
        "error.body": "The request could not be completed. Nothing was changed. Please try again in a moment.",
        "notfound.title": "Page not found",
    },
    "fr": {
        "app.name": "Zoho CRM pour Office 365",
        "lang.switch": "English",
        "nav.signout": "Se déconnecter",
        "accounts.title": "Comptes Zoho CRM",
        "accounts.intro": "Vous êtes connecté à Office 365 en tant que {email}. Acceptez les conditions générales, puis cliquez sur Continue (Continuer) pour accéder à votre compte CRM.",
        "accounts.terms": "J'accepte les conditions générales de Zoho CRM.",
        "accounts.terms.link": "Lire les conditions générales",
        "accounts.continue": "Continue",
        "accounts.associate": "Associate My Account",
        "accounts.associate.help": "Vous avez déjà un compte CRM avec une autre adresse e-mail ? Connectez-vous avec ce compte pour l'associer à la place.",
        "accounts.terms.required": "Veuillez accepter les conditions générales pour continuer.",
        "install.admin_required.title": "Un administrateur doit d'abord installer l'application",
        "install.admin_required.body": "Zoho CRM n'est pas encore installé pour votre organisation ({tenant}). Seul un administrateur d'Office 365 peut l'installer. Demandez à votre administrateur d'ouvrir Zoho CRM depuis le lanceur d'applications Office 365 et de l'installer ; vous pourrez l'utiliser une fois qu'il vous aura approuvé.",
        "install.consent_refused.title": "L'application n'a pas été installée",
        "install.consent_refused.body": "Microsoft n'a pas accordé les autorisations nécessaires à l'application ({reason}). Rien n'a été installé. Un administrateur d'Office 365 peut réessayer depuis le lanceur d'applications.",
        "install.consent_wrong_tenant.body": "Les autorisations ont été accordées pour une autre organisation que celle avec laquelle vous êtes connecté. Rien n'a été installé.",
        "signin.failed.title": "La connexion n'a pas pu aboutir",
        "signin.failed.body": "{reason} Rien n'a été modifié. Rouvrez l'application depuis le lanceur d'applications Office 365.",
        "signin.replayed.body": "Cette réponse de connexion ne correspond à aucune connexion commencée dans ce navigateur, ou elle a déjà été utilisée. Rien n'a été modifié. Rouvrez l'application depuis le lanceur d'applications Office 365.",
        "signin.expired.title": "Votre session a expiré",
        "signin.expired.body": "Pour votre sécurité, les sessions prennent fin au bout d'un certain temps. Rien n'a été modifié. Rouvrez l'application depuis le lanceur d'applications Office 365.",
        "csrf.title": "Ce formulaire n'a pas pu être accepté",
        "csrf.body": "Il manquait au formulaire son jeton de sécurité, ou il venait d'un autre site. Rien n'a été modifié. Revenez en arrière, rechargez la page et réessayez.",
        "associate.taken.title": "Ce compte CRM est déjà associé",
        "associate.taken.body": "Le compte CRM {email} est déjà associé à un autre compte Microsoft. Rien n'a été modifié.",
        "associate.already.body": "Votre compte Microsoft est déjà associé au compte CRM {email}. Rien n'a été modifié.",
        "associate.failed.title": "Votre compte CRM n'a pas pu être associé",
        "associate.failed.body": "{reason} Rien n'a été modifié.",
        "join.title": "Votre organisation a déjà un compte CRM",
        "join.body": "{org} utilise Zoho CRM. Vous n'en êtes pas encore membre : demandez à le rejoindre et les personnes qui gèrent les utilisateurs seront prévenues par e-mail.",
        "join.request": "Request to Join",
        "signedout.title": "Vous êtes déconnecté",
        "signedout.body": "Vous pouvez fermer cette fenêtre, ou rouvrir l'application depuis le lanceur d'applications Office 365.",
        "error.title": "Une erreur s'est produite",
        "error.body": "La demande n'a pas pu aboutir. Rien n'a été modifié. Réessayez dans un instant.",
        "notfound.title": "Page introuvable",
    },
}


def choose_language(query_lang: str | None, cookie_lang: str | None, accept_language: str | None) -> str:
    """An explicit choice (link or cookie) wins; else the best of Accept-Language; else English."""
    for explicit in (query_lang, cookie_lang):
        if explicit in LANGUAGES:
            return explicit
    ranked: list[tuple[float, str]] = []
    for part in (accept_language or "").split(","):
        pieces = part.strip().split(";q=")
        tag = pieces[0].strip().lower()[:2]
        try:
            weight = float(pieces[1]) if len(pieces) > 1 else 1.0
        except ValueError:
            weight = 0.0
        if tag in LANGUAGES:
            ranked.append((weight, tag))
    return max(ranked)[1] if ranked else "en"


def translate(lang: str, key: str, **values: str) -> str:
    text = TEXTS.get(lang, TEXTS["en"]).get(key) or TEXTS["en"][key]
    return text.format(**values) if values else text
